"""NUMA policy of the slab pools, against copies of /sys/devices/system/node (tests/data/numa/)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mcp_edge.errors import SlabExhausted
from mcp_edge.native import _slab

DATA = Path(__file__).resolve().parents[1] / "data" / "numa"
BAD = sorted(p.name for p in DATA.iterdir() if p.name.startswith("bad-"))


def topo(name: str) -> str:
    return str(DATA / name)


# -- cpulist syntax


@pytest.mark.parametrize(("text", "cpus"), [
    ("0", [0]),
    ("0-3", [0, 1, 2, 3]),
    ("0-3,8-11", [0, 1, 2, 3, 8, 9, 10, 11]),
    ("0-3,8-11\n", [0, 1, 2, 3, 8, 9, 10, 11]),
    ("5,1,3", [1, 3, 5]),
    ("2-2", [2]),
    ("", []),
    ("\n", []),
    ("0-1,1-2", [0, 1, 2]),
    ("4095", [4095]),
])
def test_cpulist_parses(text: str, cpus: list[int]) -> None:
    assert _slab.parse_cpulist(text) == cpus


@pytest.mark.parametrize("text", ["x", "0-", "-1", "3-1", "0,,1", "0-3,", ",0", "0 1", "1-2-3", "4096",
                                  "0-4096", "99999999999", "0\n\n", "0x1"])
def test_cpulist_malformed_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="malformed cpu list"):
        _slab.parse_cpulist(text)


# -- topologies


def test_one_node() -> None:
    t = _slab.numa_topology(topo("one-node"))
    assert t == {"nodes": [0], "memory": [0], "cpus": {0: [0, 1]}, "distance": {0: {0: 10}}}
    assert _slab.numa_order(0, topo("one-node")) == [0]
    assert _slab.numa_order(1, topo("one-node")) == [0]
    assert _slab.numa_order(7, topo("one-node")) == [0]  # a cpu it does not list still gets the one node


def test_two_nodes_with_split_cpulists() -> None:
    t = _slab.numa_topology(topo("two-nodes"))
    assert t["nodes"] == [0, 1] and t["memory"] == [0, 1]
    assert t["cpus"] == {0: [0, 1, 2, 3, 8, 9, 10, 11], 1: [4, 5, 6, 7, 12, 13, 14, 15]}
    assert t["distance"] == {0: {0: 10, 1: 21}, 1: {0: 21, 1: 10}}
    for cpu in (0, 3, 8, 11):
        assert _slab.numa_order(cpu, topo("two-nodes")) == [0, 1]
    for cpu in (4, 7, 12, 15):
        assert _slab.numa_order(cpu, topo("two-nodes")) == [1, 0]


def test_four_nodes_with_a_memoryless_node() -> None:
    path = topo("four-nodes-memoryless")
    t = _slab.numa_topology(path)
    assert t["nodes"] == [0, 1, 2, 3]
    assert t["memory"] == [0, 1, 3]
    assert t["cpus"][2] == list(range(16, 24))
    assert _slab.numa_order(0, path) == [0, 1, 3]      # own node, then by distance 12 < 22
    assert _slab.numa_order(9, path) == [1, 0, 3]
    assert _slab.numa_order(30, path) == [3, 1, 0]     # distance 20 to node 1, 22 to node 0
    # cpus of the memory-less node: nearest memory first (12 to node 3, 20 to node 0, 22 to node 1)
    assert _slab.numa_order(16, path) == [3, 0, 1]
    assert _slab.numa_order(23, path) == [3, 0, 1]


def test_offline_cpus_and_sparse_node_ids() -> None:
    path = topo("offline-cpus-sparse")
    t = _slab.numa_topology(path)
    assert t["nodes"] == [0, 2]
    assert t["memory"] == [0, 2]  # no has_memory file: each node's meminfo says so
    assert t["cpus"] == {0: [0, 2, 3], 2: [5, 6, 7, 16]}
    assert _slab.numa_order(2, path) == [0, 2]
    assert _slab.numa_order(16, path) == [2, 0]
    # offline (unlisted) cpus, and ones beyond any list, get the memory nodes by id
    for cpu in (1, 4, 8, 15, 100, -1):
        assert _slab.numa_order(cpu, path) == [0, 2]


def test_nodes_from_folders_without_an_online_file() -> None:
    t = _slab.numa_topology(topo("no-online-file"))
    assert t["nodes"] == [0, 1]
    assert _slab.numa_order(3, topo("no-online-file")) == [1, 0]


def test_memoryless_meminfo_without_has_memory(tmp_path: Path) -> None:
    for i, (cpus, mem) in enumerate([("0", 1024), ("1", 0)]):
        node = tmp_path / f"node{i}"
        node.mkdir()
        (node / "cpulist").write_text(cpus + "\n")
        (node / "distance").write_text("10 20\n" if i == 0 else "20 10\n")
        (node / "meminfo").write_text(f"Node {i} MemTotal:       {mem} kB\n")
    (tmp_path / "online").write_text("0-1\n")
    assert _slab.numa_topology(str(tmp_path))["memory"] == [0]
    assert _slab.numa_order(1, str(tmp_path)) == [0]


@pytest.mark.parametrize("name", BAD)
def test_malformed_topology_is_refused(name: str) -> None:
    with pytest.raises(ValueError, match="malformed"):
        _slab.numa_topology(topo(name))
    with pytest.raises(ValueError, match="malformed"):
        _slab.Pool(topology=topo(name), bind=False)


def test_missing_topology_folder(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        _slab.numa_topology(str(tmp_path / "absent"))
    with pytest.raises(FileNotFoundError):
        _slab.numa_topology(str(tmp_path))  # a folder with no node in it


def test_this_machine_topology_is_readable() -> None:
    if not os.path.isdir(_slab.NUMA_DIR):
        pytest.skip(f"no {_slab.NUMA_DIR}: a kernel without NUMA (the pool then uses one node)")
    t = _slab.numa_topology()
    assert t["memory"], "at least one node has memory"
    assert set(t["memory"]) <= set(t["nodes"])
    cpu = os.sched_getaffinity(0).pop()
    assert _slab.numa_order(cpu)[0] in t["memory"]


# -- pools built on fixture topologies (mbind off: those nodes are not this machine's)


@pytest.mark.parametrize(("name", "nodes"), [
    ("one-node", (0,)), ("two-nodes", (0, 1)), ("four-nodes-memoryless", (0, 1, 3)), ("offline-cpus-sparse", (0, 2)),
])
def test_pool_has_one_arena_per_memory_node(name: str, nodes: tuple[int, ...]) -> None:
    with _slab.Pool((64,), (4,), topology=topo(name), bind=False) as pool:
        assert pool.nodes == nodes
        assert not pool.bound
        assert pool.node_order(10_000) == tuple(sorted(nodes))
        assert set(pool.node_stats()) == set(nodes)
        assert pool.stats()[0]["count"] == 4 * len(nodes)


def test_pool_node_order_matches_policy() -> None:
    path = topo("four-nodes-memoryless")
    with _slab.Pool((64,), (4,), topology=path, bind=False) as pool:
        for cpu in range(32):
            assert list(pool.node_order(cpu)) == _slab.numa_order(cpu, path)


def test_pool_falls_back_to_the_next_node_when_its_own_is_empty() -> None:
    """Pinned to one cpu, allocations come from that cpu's node, then the next by distance."""
    cpu = min(os.sched_getaffinity(0))
    path = topo("two-nodes")  # cpus 0-3 on node 0, 4-7 on node 1: this machine's cpu 0 or 1 is on node 0
    if cpu > 3:
        pytest.skip(f"this test pins to cpu {cpu}, which the fixture puts on node 1")
    old = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        with _slab.Pool((64,), (3,), topology=path, bind=False) as pool:
            blocks = [pool.alloc(64) for _ in range(6)]
            assert [b.node for b in blocks] == [0, 0, 0, 1, 1, 1]
            with pytest.raises(SlabExhausted):
                pool.alloc(64)
            assert pool.node_stats()[0][0]["in_use"] == 3
            assert pool.node_stats()[1][0]["in_use"] == 3
            for b in blocks:
                b.release()
            assert pool.stats()[0]["in_use"] == 0
    finally:
        os.sched_setaffinity(0, old)


def test_pool_without_numa_is_one_node() -> None:
    with _slab.Pool((64,), (2,), numa=False) as pool:
        assert pool.nodes == (0,)
        assert not pool.bound
        assert pool.alloc(10).node == 0


def test_pool_binds_on_a_machine_with_several_nodes() -> None:
    t = _slab.numa_topology() if os.path.isdir(_slab.NUMA_DIR) else {"memory": [0]}
    if len(t["memory"]) < 2:
        pytest.skip("this machine has one NUMA node with memory: mbind is not used (the fixtures test the policy)")
    with _slab.Pool((64,), (4,)) as pool:
        assert pool.bound
        assert pool.nodes == tuple(t["memory"])


def test_bind_puts_the_arena_under_an_mbind_policy() -> None:
    """bind=True on this machine's own topology: /proc/self/numa_maps shows the arena bound to its node."""
    if not _slab.numa_available():
        pytest.skip("the kernel has no NUMA support (numa_available() < 0): mbind cannot be used")
    with _slab.Pool((4096,), (64,), bind=True) as pool:
        assert pool.bound
        with pool.alloc(4096) as block:
            memoryview(block)[:1] = b"x"
            maps = Path("/proc/self/numa_maps").read_text().splitlines()
            node = pool.nodes[0]
            assert any(f"bind:{node}" in line and "anon=" in line for line in maps), \
                "no anonymous mapping bound to the arena's node"
