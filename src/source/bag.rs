//! `bag:FILE`: a librealsense `.bag` (ROS1 bag v2) replayed as a camera, in pure Rust.
