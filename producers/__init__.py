"""Everything that puts frames on Kafka.

A source is an iterable of `schemas.Frame` (synthetic.SyntheticSource, video.VideoSource,
camera.CameraSource, images.ImageFolderSource); publisher.Publisher sends any iterable of
frames. Modules are imported one by one (OpenCV loads only where a source needs it).
"""
