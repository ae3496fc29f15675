"""Colour scenes of real MNIST digits and the scene parser that judges images (rule group scenes).

``dataset`` is the scenes file format and the shared constants (COLOURS, geometry); ``captions``
the caption templates and hard negatives; ``compose`` scene composition and the shifted copy;
``stages`` the make_scenes stage; ``parser`` / ``detect`` the scene-parser network, its training,
decoding and metrics; ``parser_stages`` the train_scene_parser / evaluate_scene_parser stages
and ``load_parser`` (the trained judge); ``geneval`` the GenEval-style scoring of generated images.
"""
