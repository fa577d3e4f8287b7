"""Video index and search: building an index of clip embeddings in Arrow shards (`build`) and searching it with FAISS
candidates re-ranked by the exact X-CLIP score (`index.VideoIndex`)."""
