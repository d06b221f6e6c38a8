/* SPDX-License-Identifier: Apache-2.0 */
/* virtio-vsock: guest stream sockets proxied to host Unix sockets, Firecracker's convention. */
#ifndef SANDBOX_VIRTIO_VSOCK_H
#define SANDBOX_VIRTIO_VSOCK_H

#include <stdint.h>

#include "../../vmm/device.h"

/*
 * The host side of the device (Firecracker's convention, so its tooling fits):
 *   - host to guest: a host process connects to @uds_path and writes
 *     "CONNECT <port>\n"; once the guest accepts on <port> it reads
 *     "OK <host port>\n", then the stream is the guest's socket;
 *   - guest to host: a guest connect to CID 2 port P is forwarded to the
 *     Unix socket "<uds_path>_P", which a host process listens on.
 */
struct vsock_config {
	uint64_t guest_cid; /* 3 .. UINT32_MAX - 1 (UINT32_MAX is VMADDR_CID_ANY) */
	const char *uds_path; /* the device binds it: it must not exist */
};

/*
 * Creates a virtio-vsock device (virtio 1.2, 5.10; device id 19, queues rx,
 * tx and event) behind a virtio-mmio transport at guest physical @base with
 * interrupt line @irq. It binds and listens on @cfg->uds_path at once and
 * unlinks it when destroyed. Connections are served on a thread of the
 * device's own from DRIVER_OK on. Snapshots: pausing keeps the connections
 * (the thread stops, the sockets stay); a device restored from a snapshot
 * has none, and tells the guest so with a TRANSPORT_RESET event.
 * Returns 0 and the transport's generic device in *@out (the VM owns it
 * after vm__add_device(); destroy through its ops), or -errno after logging:
 * -EINVAL for a CID outside 3..UINT32_MAX - 1 or no path, -ENAMETOOLONG for a
 * path that does not fit a Unix socket address, -EADDRINUSE if the path
 * exists, -ENOMEM, or what socket(), bind(), listen() or the transport
 * returned.
 */
int virtio_vsock__new(struct vm *vm, uint64_t base, uint32_t irq,
		      const struct vsock_config *cfg,
		      struct device **out) __must_check;

#endif
