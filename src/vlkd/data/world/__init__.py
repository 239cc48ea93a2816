"""The synthetic video world: seeded scenes rendered to mp4 with captions and questions."""
