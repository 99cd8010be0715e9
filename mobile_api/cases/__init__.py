"""Cases: the case file (案卷) assembled from terminal events, procedure rules and machine review."""
