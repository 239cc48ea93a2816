"""Downstream tasks in their official file layouts (GLUE, SQuAD, SWAG, PIQA, TRACIE, bundled)."""
