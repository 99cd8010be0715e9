"""mobile_api"""
