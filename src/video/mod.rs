//! Colour video: one FFmpeg process per camera, raw frames on stdin.
