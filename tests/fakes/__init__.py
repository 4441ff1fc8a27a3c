"""Local fake venues that speak a real venue's wire protocol, so the venue's own client code runs in tests."""
