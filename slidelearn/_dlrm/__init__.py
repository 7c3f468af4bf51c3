"""DLRM recommender models: embedding bags, MLPs and feature interactions."""
