"""sync/qbo"""
