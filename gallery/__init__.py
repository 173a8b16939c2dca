"""The central gallery: FAISS index, cross-camera association, Redis store, gRPC service, console."""
