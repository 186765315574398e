"""The single-image segmenter (NAS-FPN + semantic FPN head), its metrics and export."""
