"""The labeler's batch logic: pure decisions and the pipeline that carries them out."""
