//! Export of recordings to the formats training pipelines read (work in progress).
