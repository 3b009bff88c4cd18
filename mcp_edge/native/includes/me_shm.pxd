# Declarations of csrc/shm/me_shm.h.
from libc.stdint cimport int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from posix.types cimport pid_t

from mcp_edge.native.includes.me_frame cimport me_frame
from mcp_edge.native.includes.me_slab cimport me_slab_config


cdef extern from "shm/me_shm.h" nogil:
    const char *ME_SHM_MAGIC
    int ME_SHM_MAGIC_LEN
    int ME_SHM_VERSION
    int ME_SHM_HEADER_BYTES
    int ME_SHM_MAX_PRODUCERS
    int ME_SHM_MAX_SEGMENTS
    int ME_SHM_F_PAYLOAD_CRC
    int ME_RING_NONE
    int ME_RING_SPSC
    int ME_RING_MPSC
    int ME_RING_DATA_ENTRY
    int ME_RING_DONE_ENTRY
    int ME_RING_HEADER_BYTES
    int ME_RING_MIN_ENTRIES
    int ME_RING_MAX_ENTRIES
    int ME_SHM_OWNER_CONSUMER
    uint32_t ME_SHM_OWNER_PRODUCER(uint32_t segment)
    int ME_PEER_FREE
    int ME_PEER_ATTACHED
    int ME_PEER_CLOSED
    int ME_PEER_DEAD
    int ME_PEER_STALE
    int ME_CHAN_BATCH
    int ME_RING_RECHECK_NS
    int ME_CHAN_WAKE_BLOCKS
    int ME_CHAN_WAKE_SPACE
    int ME_CHAN_HOLD_WAKE

    struct me_shm_layout:
        uint32_t data_kind
        uint32_t data_entries
        uint32_t completion_entries
        uint32_t flags
        uint16_t segment_id
        uint16_t producers
        me_slab_config slab

    struct me_shm_info:
        me_shm_layout layout
        uint64_t total
        uint32_t creator_pid
        uint32_t version
        uint64_t data_off
        uint64_t data_bytes
        uint64_t done_off
        uint64_t done_bytes
        uint64_t arena_off
        uint64_t arena_bytes

    size_t me_shm_segment_bytes(const me_shm_layout *lay)
    uint32_t me_shm_completion_entries(const me_slab_config *cfg)
    int me_shm_segment_init(void *base, size_t len, const me_shm_layout *lay)
    int me_shm_segment_check(const void *base, size_t len, me_shm_info *out)
    int me_shm_create(const char *name, int named, size_t len)
    int me_shm_open(const char *name)
    int me_shm_unlink(const char *name)
    int64_t me_shm_fd_size(int fd)
    int me_shm_map(int fd, size_t len, int prefault, void **out)
    int me_shm_unmap(void *base, size_t len)
    int me_shm_peer_get(const void *base, uint32_t i, uint32_t *pid)
    int me_shm_peer_set(void *base, uint32_t i, uint32_t pid, uint32_t state)

    struct me_ring:
        uint32_t kind
        uint32_t entries
        uint64_t head
        uint64_t tail
        int wake_fd
        uint32_t writer_id
        uint64_t sleeps
        uint64_t wakes
        uint64_t held
        uint32_t owed

    size_t me_ring_bytes(uint32_t kind, uint32_t entries, uint32_t entry_size)
    uint32_t me_ring_readable(me_ring *r)
    uint32_t me_ring_writable(me_ring *r)
    int me_ring_wait_readable(me_ring *r, uint32_t need, int64_t spin_ns, int64_t timeout_ns)
    int me_ring_wait_writable(me_ring *r, uint32_t need, int64_t spin_ns, int64_t timeout_ns)
    int me_ring_flush_reader(me_ring *r)
    int me_ring_flush_writers(me_ring *r)
    void me_ring_kick_reader(me_ring *r)
    void me_ring_kick_writers(me_ring *r)
    int me_ring_arm_fd(me_ring *r)
    void me_ring_disarm_fd(me_ring *r)
    void me_ring_positions(const me_ring *r, uint64_t *head, uint64_t *tail)
    uint64_t me_ring_claimed(me_ring *r)

    int me_shm_can_run_apart(pid_t a, pid_t b)
    int me_shm_pid_alive(int pidfd, pid_t pid)
    int me_shm_pidfd_open(pid_t pid)
    int64_t me_shm_now_ns()

    struct me_chan_stats:
        uint64_t loans
        uint64_t published
        uint64_t full
        uint64_t exhausted
        uint64_t reaped
        uint64_t stale_done
        uint64_t received
        uint64_t released
        uint64_t dropped
        uint64_t reclaimed
        uint64_t peer_deaths
        uint64_t wakes
        uint64_t sleeps
        uint64_t paced

    struct me_chan_producer:
        me_ring data
        me_ring done
        uint8_t *base
        void *arena
        uint64_t arena_off
        uint64_t arena_bytes
        uint16_t segment
        uint32_t owner
        uint32_t flags
        me_chan_stats st

    struct me_chan_source:
        me_ring done
        uint8_t *base
        void *arena
        uint32_t state

    struct me_chan_consumer:
        me_ring data
        uint32_t flags
        uint32_t nbatch
        uint32_t at
        uint32_t owed
        me_chan_source src[65]
        me_chan_stats st

    int me_chan_producer_init(me_chan_producer *p, void *hub, const me_shm_info *hub_info, void *own,
                              const me_shm_info *own_info, int wake_fd)
    uint32_t me_chan_reap(me_chan_producer *p)
    int64_t me_chan_loan(me_chan_producer *p, uint32_t n)
    int64_t me_chan_capacity(me_chan_producer *p, uint64_t off)
    int me_chan_unloan(me_chan_producer *p, uint64_t off)
    int me_chan_publish(me_chan_producer *p, uint64_t off, uint32_t len, uint8_t type, uint64_t id, uint8_t flags)
    int me_chan_flush_reader(me_chan_producer *p)
    int me_chan_signal(me_chan_producer *p, uint8_t type, uint64_t id, uint8_t flags)
    int me_chan_wait_space(me_chan_producer *p, int64_t timeout_ns)
    int me_chan_wait_blocks(me_chan_producer *p, uint32_t n, int64_t timeout_ns)
    uint32_t me_chan_recover_consumer(me_chan_producer *p)
    void me_chan_producer_detach(me_chan_producer *p)

    int me_chan_consumer_init(me_chan_consumer *c, void *hub, const me_shm_info *hub_info)
    int me_chan_consumer_add(me_chan_consumer *c, uint16_t segment, void *seg, const me_shm_info *info)
    int me_chan_receive(me_chan_consumer *c, me_frame *f, uint8_t **payload)
    int me_chan_release(me_chan_consumer *c, uint16_t segment, uint64_t off)
    int me_chan_ready(me_chan_consumer *c)
    uint32_t me_chan_flush(me_chan_consumer *c)
    int me_chan_wait_frames(me_chan_consumer *c, int64_t spin_ns, int64_t timeout_ns)
    uint32_t me_chan_recover_producer(me_chan_consumer *c, uint16_t segment, uint32_t pid)
    int me_chan_slot_free(me_chan_consumer *c, uint16_t segment)
    void me_chan_source_reopen(me_chan_consumer *c, uint16_t segment)
