"""train.histology"""
