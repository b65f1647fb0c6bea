"""The System page's table of TensorFlow's devices, from the model service's answer."""

from dashboard.system_views import device_table


def test_a_cpu_has_the_hosts_memory_not_none_and_a_gpu_its_own():
    devices = [{"kind": "CPU", "name": "/physical_device:CPU:0", "memory_mb": None},
               {"kind": "GPU", "name": "/physical_device:GPU:0", "memory_mb": 79_647}]
    table = device_table(devices)
    assert list(table.columns) == ["kind", "name", "memory (MiB)"]
    assert table["memory (MiB)"].tolist() == ["the host's (not reserved)", "79,647"]
    assert "None" not in table.to_csv()


def test_no_devices_is_an_empty_table_with_its_columns():
    assert list(device_table([]).columns) == ["kind", "name", "memory (MiB)"]
