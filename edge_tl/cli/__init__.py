"""The thin Click front end. Command modules import heavy libraries inside their functions only."""
