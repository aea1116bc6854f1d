"""runway"""
