"""Tasks on embeddings, one module each, with one shape: an options dataclass, a pure function
on arrays, and an adapter that runs it on a collection.

    classify.py    zero-shot and trained classifiers (JSON + safetensors, never pickle)
    cluster.py     k-means, HDBSCAN, agglomerative, community detection; c-TF-IDF keywords
    mining.py      near-duplicate pairs and deduplication (blocked exact or ANN)
    recommend.py   like / dislike / history profiles, MMR diversity
    projection.py  2-D maps (PCA, t-SNE, UMAP) as PNG or interactive HTML
    tokens.py      contextual token and word vectors
"""
