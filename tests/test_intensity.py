import numpy as np

from yolo_tools.intensity import Percentile, Window, Windows, percentile, to_uint8, window


def test_window_maps_hounsfield_range_and_saturates() -> None:
    hu = np.array([-1000, -160, 40, 240, 1000], dtype=np.int16)
    assert window(hu, center=40, width=400).tolist() == [0, 0, 128, 255, 255]


def test_percentile_ignores_bright_outliers() -> None:
    mri = np.concatenate([np.linspace(0, 1000, 999), [60000]]).astype(np.uint16)
    out = percentile(mri, 0.5, 99.5)
    assert out.dtype == np.uint8 and out[-1] == 255 and out[500] in range(120, 136)


def test_multi_window_makes_three_channels() -> None:
    hu = np.full((4, 4), 40, dtype=np.int16)
    rgb = to_uint8(hu, Windows(windows=[(40, 400), (500, 2000)]))
    assert rgb.shape == (4, 4, 3) and (rgb[..., 1] == rgb[..., 2]).all()


def test_spec_dispatch_and_8bit_passthrough() -> None:
    grey = np.arange(256, dtype=np.uint8).reshape(16, 16)
    assert to_uint8(grey, None) is grey
    assert to_uint8(grey.astype(np.uint16) * 256, None).max() == 255
    assert to_uint8(grey, Window(center=127.5, width=255)).tolist() == grey.tolist()
    assert to_uint8(grey, Percentile(low=0, high=100)).tolist() == grey.tolist()
