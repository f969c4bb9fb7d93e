"""synth.phantom"""
