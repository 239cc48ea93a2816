"""VidLanKD teacher samples: HowTo100M caption windows paired with video feature steps."""
