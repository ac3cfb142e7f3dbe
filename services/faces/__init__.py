"""Face-match calibration and benchmark (dlib embeddings via vision.face)."""
