#!/usr/bin/env bash
# Validate DICOM files written by detect (e.g. `detect predict --save sr`) with dicom3tools'
# dciodvfy, an independent validator. Prints each file's errors; exits 1 if any file has one.
# usage: tools/dciodvfy.sh FILE_OR_FOLDER...      (needs: apt-get install dicom3tools)
set -u
command -v dciodvfy >/dev/null || { echo "dciodvfy not found: apt-get install dicom3tools" >&2; exit 2; }
[ $# -gt 0 ] || { echo "usage: $0 FILE_OR_FOLDER..." >&2; exit 2; }
failed=0 checked=0
while IFS= read -r -d '' file; do
  checked=$((checked + 1))
  errors=$(dciodvfy -new "$file" 2>&1 | grep -E '^Error' || true)
  if [ -n "$errors" ]; then
    failed=$((failed + 1))
    printf '%s\n%s\n' "$file" "$errors"
  fi
done < <(find "$@" -type f -name '*.dcm' -print0)
echo "$checked files checked, $failed with errors"
[ "$failed" -eq 0 ]
