"""server/app"""
