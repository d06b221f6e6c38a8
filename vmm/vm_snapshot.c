// SPDX-License-Identifier: Apache-2.0
// A VM to a snapshot file and back: configuration, vCPUs, irqchip, devices, memory.
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "../snapshot/snap.h"
#include "log.h"
#include "vm.h"

/* Drive flags in the configuration record. */
#define DRIVE_RO 1U
#define DRIVE_DIRECT 2U

/*
 * The configuration record: what the VM must be rebuilt from before its
 * state can be set. Boot images are not needed again; the command line is
 * kept for `snapshot inspect`.
 */
static void save_config(struct vm *vm, struct state_buf *b)
{
	unsigned int i;

	state__put_u64(b, vm->mem.ram.gpa);
	state__put_u64(b, vm->mem.ram.size);
	state__put_u32(b, vm->nr_vcpus);
	state__put_str(b, vm->cmdline);
	state__put_u32(b, vm->nr_drives);
	for (i = 0; i < vm->nr_drives; i++) {
		state__put_str(b, vm->drives[i].path);
		state__put_u32(
			b, (vm->drives[i].ro ? DRIVE_RO : 0) |
				   (vm->drives[i].direct ? DRIVE_DIRECT : 0));
	}
	state__put_u64(b, vm->vsock_cid);
}

/* Each device: its name and base (to match it on restore), then its record. */
static int save_devices(struct vm *vm, struct state_buf *b)
{
	unsigned int i;
	int err;

	state__put_u32(b, vm->nr_devs);
	for (i = 0; i < vm->nr_devs; i++) {
		struct device *dev = vm->devs[i];
		struct state_buf rec;

		state__init(&rec);
		err = dev->ops->save ? dev->ops->save(dev, &rec) : 0;
		if (!err && rec.len > UINT32_MAX)
			err = -E2BIG;
		if (err) {
			pr_err("%s at 0x%llx: cannot save its state: %s",
			       dev->ops->name, (unsigned long long)dev->base,
			       strerror(-err));
			state__exit(&rec);
			return err;
		}
		state__put_str(b, dev->ops->name);
		state__put_u64(b, dev->base);
		state__put_u32(b, (uint32_t)rec.len);
		state__put_bytes(b, rec.data, rec.len);
		state__exit(&rec);
	}
	return state__err(b);
}

int vm__save(struct vm *vm, const char *path,
	     const struct snap_write_opts *opts, struct snap_mem_stats *stats)
{
	struct state_buf bufs[SNAP_NR_STATES];
	struct snap_blob blobs[SNAP_NR_STATES];
	struct snap_region region;
	struct snap_write_opts o = *opts;
	void *hva;
	unsigned int i;
	int err;

	if (vm->started && !__atomic_load_n(&vm->paused, __ATOMIC_ACQUIRE)) {
		pr_err("snapshot: the VM must be paused first");
		return -EBUSY;
	}
	for (i = 0; i < SNAP_NR_STATES; i++)
		state__init(&bufs[i]);
	save_config(vm, &bufs[SNAP_STATE_CONFIG]);
	err = state__err(&bufs[SNAP_STATE_CONFIG]);
	if (!err)
		err = vm__arch_save(vm, &bufs[SNAP_STATE_VCPUS],
				    &bufs[SNAP_STATE_IRQCHIP]);
	if (!err)
		err = save_devices(vm, &bufs[SNAP_STATE_DEVICES]);
	for (i = 0; !err && i < SNAP_NR_STATES; i++) {
		err = state__err(&bufs[i]);
		blobs[i].data = bufs[i].data;
		blobs[i].len = bufs[i].len;
	}
	if (err) {
		if (err == -ENOMEM)
			pr_err("snapshot: out of memory");
		goto out;
	}
	o.arch = vm__arch_snap_id();
	region.gpa = vm->mem.ram.gpa;
	region.size = vm->mem.ram.size;
	hva = vm->mem.ram.hva;
	err = snap__write(path, &o, blobs, &region, &hva, 1, stats);
out:
	for (i = 0; i < SNAP_NR_STATES; i++)
		state__exit(&bufs[i]);
	return err;
}

/* Paths in the configuration record; freed by the caller. */
struct restored_config {
	struct vm_config cfg;
	char cmdline[4096];
	char paths[VM_MAX_DRIVES][PATH_MAX];
};

static int load_config(const struct snap *s, struct restored_config *rc)
{
	const struct snap_info *info = snap__info(s);
	struct state_reader r;
	const void *data;
	uint64_t gpa;
	size_t len;
	unsigned int i;

	data = snap__state(s, SNAP_STATE_CONFIG, &len);
	state__reader(&r, data, len);
	memset(&rc->cfg, 0, sizeof(rc->cfg));
	gpa = state__get_u64(&r);
	rc->cfg.mem_size = state__get_u64(&r);
	rc->cfg.nr_vcpus = state__get_u32(&r);
	state__get_str(&r, rc->cmdline, sizeof(rc->cmdline));
	rc->cfg.cmdline = rc->cmdline;
	rc->cfg.nr_drives = state__get_u32(&r);
	if (rc->cfg.nr_drives > VM_MAX_DRIVES)
		rc->cfg.nr_drives = VM_MAX_DRIVES + 1;
	for (i = 0; i < rc->cfg.nr_drives && i < VM_MAX_DRIVES; i++) {
		uint32_t flags;

		state__get_str(&r, rc->paths[i], sizeof(rc->paths[i]));
		flags = state__get_u32(&r);
		rc->cfg.drives[i].path = rc->paths[i];
		rc->cfg.drives[i].ro = flags & DRIVE_RO;
		rc->cfg.drives[i].direct = flags & DRIVE_DIRECT;
	}
	rc->cfg.vsock_cid = state__get_u64(&r);
	if (state__rerr(&r) || state__left(&r) ||
	    rc->cfg.nr_drives > VM_MAX_DRIVES) {
		pr_err("snapshot: malformed configuration record");
		return -EBADMSG;
	}
	/* The memory layout is recorded twice: header and record must agree. */
	if (info->nr_regions != 1 || info->regions[0].gpa != gpa ||
	    info->regions[0].size != rc->cfg.mem_size || gpa != ARCH_RAM_BASE) {
		pr_err("snapshot: its memory layout does not match this VMM's");
		return -EBADMSG;
	}
	/* Not booted again: vm__new()'s checks want a kernel path, never opened. */
	rc->cfg.kernel_path = "(snapshot)";
	return 0;
}

static int restore_devices(struct vm *vm, const struct snap *s)
{
	struct state_reader r;
	const void *data;
	size_t len;
	unsigned int i;
	char name[64];
	int err;

	data = snap__state(s, SNAP_STATE_DEVICES, &len);
	state__reader(&r, data, len);
	if (state__get_u32(&r) != vm->nr_devs || state__rerr(&r)) {
		pr_err("snapshot: it holds another set of devices");
		return -EBADMSG;
	}
	for (i = 0; i < vm->nr_devs; i++) {
		struct device *dev = vm->devs[i];
		struct state_reader rec;
		const void *p;
		uint64_t base;
		uint32_t n;

		state__get_str(&r, name, sizeof(name));
		base = state__get_u64(&r);
		n = state__get_u32(&r);
		p = state__get_ptr(&r, n);
		if (state__rerr(&r) || strcmp(name, dev->ops->name) ||
		    base != dev->base) {
			pr_err("snapshot: device %u is not the %s at 0x%llx it should be",
			       i, dev->ops->name,
			       (unsigned long long)dev->base);
			return -EBADMSG;
		}
		if (!dev->ops->restore) {
			if (n) {
				pr_err("snapshot: %s has state this VMM cannot take",
				       dev->ops->name);
				return -EBADMSG;
			}
			continue;
		}
		state__reader(&rec, p, n);
		err = dev->ops->restore(dev, &rec);
		if (!err && state__left(&rec)) {
			pr_err("snapshot: %s: trailing bytes in its record",
			       dev->ops->name);
			err = -EBADMSG;
		}
		if (err)
			return err;
	}
	if (state__left(&r)) {
		pr_err("snapshot: trailing bytes after the devices");
		return -EBADMSG;
	}
	return 0;
}

/*
 * Offers guest RAM to KSM. Done after the pager, because in file mode it maps
 * the image over the range (a new mapping, without the flag); the range is
 * the same in every mode. ksmd merges only anonymous pages: in file mode, the
 * pages a guest has written, not the clean ones the page cache shares.
 */
static int mark_mergeable(struct vm *vm)
{
	int err;

	if (!madvise(vm->mem.ram.hva, vm->mem.ram.size, MADV_MERGEABLE))
		return 0;
	err = -errno;
	if (err == -EINVAL)
		pr_err("KSM: cannot mark guest memory mergeable: this kernel has no KSM (CONFIG_KSM)");
	else
		pr_err("KSM: madvise(MADV_MERGEABLE) on %llu MiB of guest memory: %s",
		       (unsigned long long)(vm->mem.ram.size >> 20),
		       strerror(-err));
	return err;
}

int vm__restore(struct snap *s, const struct vm_restore_opts *o,
		struct vm **out)
{
	struct state_reader vcpus, irqchip;
	struct restored_config *rc;
	const void *data;
	struct vm *vm;
	size_t len;
	int err;

	*out = NULL;
	rc = calloc(1, sizeof(*rc));
	if (!rc) {
		pr_err("out of memory");
		return -ENOMEM;
	}
	err = load_config(s, rc);
	if (err)
		goto out;
	rc->cfg.console_in = o->console_in;
	rc->cfg.console_out = o->console_out;
	rc->cfg.vsock_uds = o->vsock_uds;
	if (rc->cfg.vsock_cid && !o->vsock_uds) {
		pr_err("the snapshot's VM has a vsock device: give it a socket path");
		err = -EINVAL;
		goto out;
	}
	err = vm__build_restored(&rc->cfg, s, o->mem_mode, &vm);
	if (err)
		goto out;
	if (o->ksm) {
		err = mark_mergeable(vm);
		if (err) {
			vm__free(vm);
			goto out;
		}
	}
	data = snap__state(s, SNAP_STATE_VCPUS, &len);
	state__reader(&vcpus, data, len);
	data = snap__state(s, SNAP_STATE_IRQCHIP, &len);
	state__reader(&irqchip, data, len);
	err = vm__arch_restore(vm, &vcpus, &irqchip);
	if (!err)
		err = restore_devices(vm, s);
	if (err) {
		vm__free(vm);
		goto out;
	}
	*out = vm;
out:
	free(rc);
	return err;
}
