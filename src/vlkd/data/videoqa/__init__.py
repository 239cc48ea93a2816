"""VideoQA (MSVD-QA / MSRVTT-QA): question preprocessing, HCRN features, batches."""
