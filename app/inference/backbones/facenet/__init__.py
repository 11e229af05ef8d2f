"""FaceNet (Inception-ResNet-v1, CASIA-WebFace): graph.py runs the frozen TensorFlow graph
(kind `facenet-graph`)."""
