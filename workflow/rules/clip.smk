# CLIP trained with open_clip on the scenes, with and without hard negatives (issue 13).
