"""train.frcnn"""
