"""qbo_sandbox"""
