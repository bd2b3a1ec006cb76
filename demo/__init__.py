"""The main job behind ``make demo``: a folder of figures and stores."""
