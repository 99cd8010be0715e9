"""Recording on the terminal (edge side of media): runs without the server.

capture    sources of frames: synthetic, file, V4L2 camera + ALSA/Pulse microphone
overlay    date-time, terminal id and credential number burnt into every picture
segmenter  H.264 + AAC encoders cut into standalone MPEG-TS segments
recorder   standby / pre-record ring / recording / stop / resume, storage quota
chain      hash chain over segments and its signed head (the server verifies with it)
storage    on-disk layout, atomic writes;  metadata  RecordingMeta;  config  RecorderConfig
"""
