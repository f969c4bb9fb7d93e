"""models.runtime"""
