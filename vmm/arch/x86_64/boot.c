// SPDX-License-Identifier: Apache-2.0
// x86_64 boot structures built into guest memory: e820, MP table, zero page, PVH start info, page tables, GDT.
#include <elf.h>
#include <stdbool.h>
#include <endian.h>
#include <errno.h>
#include <string.h>

#include "boot.h"

/*
 * The layouts are spelled out here rather than taken from <asm/bootparam.h>:
 * that header exists only where the build host is x86 (linux-libc-dev for
 * arm64 has none), and the unit tests run on either. The tests compare these
 * offsets with the kernel's header where it exists.
 */

/* --- e820 ------------------------------------------------------------------ */

unsigned int x86_boot__e820(uint64_t ram_size, struct x86_e820_entry *e,
			    unsigned int max)
{
	struct x86_e820_entry map[3];
	unsigned int n = 0, i;

	if (ram_size)
		map[n++] = (struct x86_e820_entry){
			.addr = 0,
			.size = ram_size < X86_EBDA ? ram_size : X86_EBDA,
			.type = X86_E820_RAM,
		};
	map[n++] = (struct x86_e820_entry){
		.addr = X86_EBDA,
		.size = X86_EBDA_END - X86_EBDA,
		.type = X86_E820_RESERVED,
	};
	if (ram_size > X86_HIGH_RAM)
		map[n++] = (struct x86_e820_entry){
			.addr = X86_HIGH_RAM,
			.size = ram_size - X86_HIGH_RAM,
			.type = X86_E820_RAM,
		};
	if (n > max)
		n = max;
	for (i = 0; i < n; i++) {
		e[i].addr = htole64(map[i].addr);
		e[i].size = htole64(map[i].size);
		e[i].type = htole32(map[i].type);
	}
	return n;
}

/* --- MP table (Intel MultiProcessor Specification 1.4, chapter 4) ---------- */

struct mpf_intel {
	char signature[4];
	uint32_t physptr;
	uint8_t length; /* in 16-byte paragraphs */
	uint8_t specification;
	uint8_t checksum;
	uint8_t feature[5];
} __attribute__((packed));
_Static_assert(sizeof(struct mpf_intel) == 16, "MP floating pointer");

struct mpc_table {
	char signature[4];
	uint16_t length;
	uint8_t spec;
	uint8_t checksum;
	char oem[8];
	char productid[12];
	uint32_t oemptr;
	uint16_t oemsize;
	uint16_t oemcount;
	uint32_t lapic;
	uint16_t ext_length;
	uint8_t ext_checksum;
	uint8_t reserved;
} __attribute__((packed));
_Static_assert(sizeof(struct mpc_table) == 44, "MP configuration table header");

struct mpc_cpu {
	uint8_t type;
	uint8_t apicid;
	uint8_t apicver;
	uint8_t cpuflag;
	uint32_t cpufeature;
	uint32_t featureflag;
	uint32_t reserved[2];
} __attribute__((packed));
_Static_assert(sizeof(struct mpc_cpu) == 20, "MP processor entry");

struct mpc_bus {
	uint8_t type;
	uint8_t busid;
	char bustype[6];
} __attribute__((packed));
_Static_assert(sizeof(struct mpc_bus) == 8, "MP bus entry");

struct mpc_ioapic {
	uint8_t type;
	uint8_t apicid;
	uint8_t apicver;
	uint8_t flags;
	uint32_t apicaddr;
} __attribute__((packed));
_Static_assert(sizeof(struct mpc_ioapic) == 8, "MP I/O APIC entry");

/* I/O and local interrupt assignment entries share one layout. */
struct mpc_intsrc {
	uint8_t type;
	uint8_t irqtype;
	uint16_t irqflag;
	uint8_t srcbus;
	uint8_t srcbusirq;
	uint8_t dstapic;
	uint8_t dstirq;
} __attribute__((packed));
_Static_assert(sizeof(struct mpc_intsrc) == 8, "MP interrupt entry");

_Static_assert(X86_MPTABLE_SIZE(1) ==
		       sizeof(struct mpf_intel) + sizeof(struct mpc_table) +
			       sizeof(struct mpc_cpu) + sizeof(struct mpc_bus) +
			       sizeof(struct mpc_ioapic) +
			       X86_IOAPIC_PINS * sizeof(struct mpc_intsrc) +
			       2 * sizeof(struct mpc_intsrc),
	       "X86_MPTABLE_SIZE matches the entries written");

enum {
	MP_PROCESSOR = 0,
	MP_BUS = 1,
	MP_IOAPIC = 2,
	MP_INTSRC = 3,
	MP_LINTSRC = 4,
};
enum { MP_INT = 0, MP_NMI = 1, MP_EXTINT = 3 };

#define MP_SPEC_1_4 4
#define CPU_ENABLED 1
#define CPU_BOOTPROCESSOR 2
#define MPC_APIC_USABLE 1
#define MP_APIC_ALL 0xff
/* KVM's in-kernel local APIC and IOAPIC report these versions. */
#define LAPIC_VERSION 0x14
#define IOAPIC_VERSION 0x11
/* Family 6, and CPUID.1:EDX FPU | APIC: the values Firecracker writes. */
#define CPU_SIGNATURE 0x600
#define CPU_FEATURES 0x201

static uint8_t checksum(const void *p, size_t len)
{
	const uint8_t *b = p;
	uint8_t sum = 0;

	while (len--)
		sum += *b++;
	return (uint8_t)-sum;
}

static void put_intsrc(uint8_t *p, uint8_t type, uint8_t irqtype,
		       uint8_t srcbusirq, uint8_t dstapic, uint8_t dstirq)
{
	struct mpc_intsrc s = {
		.type = type,
		.irqtype = irqtype,
		.irqflag = htole16(0), /* conforming polarity and trigger */
		.srcbus = 0,
		.srcbusirq = srcbusirq,
		.dstapic = dstapic,
		.dstirq = dstirq,
	};

	memcpy(p, &s, sizeof(s));
}

int x86_boot__mptable(void *buf, size_t size, uint32_t gpa,
		      unsigned int nr_cpus)
{
	uint8_t *start = buf, *p;
	uint8_t ioapic_id = (uint8_t)nr_cpus;
	struct mpf_intel mpf;
	struct mpc_table mpc;
	struct mpc_bus bus = { .type = MP_BUS, .busid = 0 };
	struct mpc_ioapic ioapic = {
		.type = MP_IOAPIC,
		.apicid = ioapic_id,
		.apicver = IOAPIC_VERSION,
		.flags = MPC_APIC_USABLE,
		.apicaddr = htole32((uint32_t)X86_IOAPIC_BASE),
	};
	size_t need;
	unsigned int i;

	if (!nr_cpus || nr_cpus > X86_MPTABLE_MAX_CPUS)
		return -EINVAL;
	need = X86_MPTABLE_SIZE(nr_cpus);
	/* Linux only finds the floating pointer on a 16-byte boundary. */
	if (!IS_ALIGNED(gpa, 16) || (uint64_t)gpa + need > (1ULL << 32))
		return -EINVAL;
	if (size < need)
		return -ENOSPC;
	memset(start, 0, need);

	memset(&mpf, 0, sizeof(mpf));
	memcpy(mpf.signature, "_MP_", 4);
	mpf.physptr = htole32(gpa + sizeof(mpf));
	mpf.length = 1;
	mpf.specification = MP_SPEC_1_4;
	/* feature[0] 0: the configuration table is present (no default config). */
	mpf.checksum = checksum(&mpf, sizeof(mpf));
	memcpy(start, &mpf, sizeof(mpf));

	p = start + sizeof(mpf) + sizeof(mpc);
	for (i = 0; i < nr_cpus; i++) {
		struct mpc_cpu cpu = {
			.type = MP_PROCESSOR,
			.apicid = (uint8_t)i,
			.apicver = LAPIC_VERSION,
			.cpuflag =
				CPU_ENABLED | (i == 0 ? CPU_BOOTPROCESSOR : 0),
			.cpufeature = htole32(CPU_SIGNATURE),
			.featureflag = htole32(CPU_FEATURES),
		};

		memcpy(p, &cpu, sizeof(cpu));
		p += sizeof(cpu);
	}

	memcpy(bus.bustype, "ISA   ", sizeof(bus.bustype));
	memcpy(p, &bus, sizeof(bus));
	p += sizeof(bus);
	memcpy(p, &ioapic, sizeof(ioapic));
	p += sizeof(ioapic);

	/* KVM's default GSI routing sends GSI n to IOAPIC pin n: say so. */
	for (i = 0; i < X86_IOAPIC_PINS; i++) {
		put_intsrc(p, MP_INTSRC, MP_INT, (uint8_t)i, ioapic_id,
			   (uint8_t)i);
		p += sizeof(struct mpc_intsrc);
	}
	/* Virtual wire: the PIC through LINT0, NMIs through LINT1. */
	put_intsrc(p, MP_LINTSRC, MP_EXTINT, 0, MP_APIC_ALL, 0);
	p += sizeof(struct mpc_intsrc);
	put_intsrc(p, MP_LINTSRC, MP_NMI, 0, MP_APIC_ALL, 1);
	p += sizeof(struct mpc_intsrc);

	memset(&mpc, 0, sizeof(mpc));
	memcpy(mpc.signature, "PCMP", 4);
	mpc.length = htole16((uint16_t)(p - start - sizeof(mpf)));
	mpc.spec = MP_SPEC_1_4;
	memcpy(mpc.oem, "SANDBOX ", sizeof(mpc.oem));
	memcpy(mpc.productid, "MICROVM     ", sizeof(mpc.productid));
	mpc.oemcount =
		htole16((uint16_t)(nr_cpus + 1 + 1 + X86_IOAPIC_PINS + 2));
	mpc.lapic = htole32((uint32_t)X86_LAPIC_BASE);
	memcpy(start + sizeof(mpf), &mpc, sizeof(mpc));
	/* The checksum covers the header and every entry. */
	start[sizeof(mpf) + offsetof(struct mpc_table, checksum)] = checksum(
		start + sizeof(mpf), (size_t)(p - start) - sizeof(mpf));
	return (int)(p - start);
}

/* --- ELF vmlinux ----------------------------------------------------------- */

/* Is [off, off + size) within a file of len bytes? Without overflow. */
static bool in_file(uint64_t off, uint64_t size, size_t len)
{
	return size <= len && off <= len - size;
}

static uint64_t min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

static int elf_fail(const char **why, const char *reason)
{
	*why = reason;
	return -ENOEXEC;
}

/*
 * Walks the notes of one PT_NOTE segment (bytes [0, size) at @p) for Xen's
 * PHYS32_ENTRY. Returns 0 (*entry untouched when absent) or -ENOEXEC.
 */
static int find_pvh_note(const uint8_t *p, uint64_t size, uint64_t align,
			 uint64_t *entry, const char **why)
{
	uint64_t pos = 0;

	while (size - pos >= sizeof(Elf64_Nhdr)) {
		Elf64_Nhdr nh;
		uint64_t namesz, descsz, name, desc;

		memcpy(&nh, p + pos, sizeof(nh));
		namesz = le32toh(nh.n_namesz);
		descsz = le32toh(nh.n_descsz);
		pos += sizeof(nh);
		/* The last note's padding may be cut off by the segment end. */
		if (namesz > size - pos)
			return elf_fail(
				why,
				"ELF note name runs past its PT_NOTE segment");
		name = pos;
		pos += min_u64(ALIGN_UP(namesz, align), size - pos);
		if (descsz > size - pos)
			return elf_fail(
				why,
				"ELF note descriptor runs past its PT_NOTE segment");
		desc = pos;
		pos += min_u64(ALIGN_UP(descsz, align), size - pos);

		if (namesz != 4 || memcmp(p + name, "Xen", 4) ||
		    le32toh(nh.n_type) != X86_XEN_ELFNOTE_PHYS32_ENTRY)
			continue;
		if (descsz == 4) {
			uint32_t v;

			memcpy(&v, p + desc, 4);
			*entry = le32toh(v);
		} else if (descsz == 8) {
			uint64_t v;

			memcpy(&v, p + desc, 8);
			*entry = le64toh(v);
		} else {
			return elf_fail(
				why,
				"Xen PHYS32_ENTRY note is neither 4 nor 8 bytes");
		}
		if (!*entry || *entry > UINT32_MAX)
			return elf_fail(
				why,
				"Xen PHYS32_ENTRY note gives no 32-bit entry point");
		return 0;
	}
	return 0;
}

int x86_boot__parse_elf(const void *file, size_t len, struct x86_elf *out,
			const char **why)
{
	const uint8_t *f = file;
	Elf64_Ehdr eh;
	uint64_t phoff, phnum, i, note_budget = len;

	memset(out, 0, sizeof(*out));
	if (len < sizeof(eh))
		return elf_fail(why,
				"file is too short to hold an ELF64 header");
	memcpy(&eh, f, sizeof(eh));
	if (memcmp(eh.e_ident, ELFMAG, SELFMAG))
		return elf_fail(why, "no ELF magic");
	if (eh.e_ident[EI_CLASS] != ELFCLASS64)
		return elf_fail(why, "not a 64-bit ELF file");
	if (eh.e_ident[EI_DATA] != ELFDATA2LSB)
		return elf_fail(why, "not a little-endian ELF file");
	if (le16toh(eh.e_machine) != EM_X86_64)
		return elf_fail(
			why,
			"ELF file is not for x86_64 (e_machine is not EM_X86_64)");
	if (le16toh(eh.e_type) != ET_EXEC)
		return elf_fail(
			why,
			"ELF file is not an executable (e_type is not ET_EXEC)");
	phoff = le64toh(eh.e_phoff);
	phnum = le16toh(eh.e_phnum);
	if (!phnum || phnum == PN_XNUM)
		return elf_fail(why, "ELF file has no program headers");
	if (le16toh(eh.e_phentsize) != sizeof(Elf64_Phdr))
		return elf_fail(
			why,
			"ELF e_phentsize is not the size of an Elf64_Phdr");
	if (!in_file(phoff, phnum * sizeof(Elf64_Phdr), len))
		return elf_fail(why,
				"ELF program headers lie outside the file");
	out->entry = le64toh(eh.e_entry);
	out->lo = UINT64_MAX;

	for (i = 0; i < phnum; i++) {
		Elf64_Phdr ph;
		uint64_t off, filesz, memsz, paddr;

		memcpy(&ph, f + phoff + i * sizeof(ph), sizeof(ph));
		off = le64toh(ph.p_offset);
		filesz = le64toh(ph.p_filesz);
		memsz = le64toh(ph.p_memsz);
		paddr = le64toh(ph.p_paddr);
		switch (le32toh(ph.p_type)) {
		case PT_LOAD:
			if (filesz > memsz)
				return elf_fail(
					why,
					"ELF PT_LOAD segment has p_filesz above p_memsz");
			if (!in_file(off, filesz, len))
				return elf_fail(
					why,
					"ELF PT_LOAD segment lies outside the file");
			if (memsz > UINT64_MAX - paddr)
				return elf_fail(
					why,
					"ELF PT_LOAD segment wraps around the address space");
			if (!memsz)
				break;
			if (out->nr_segs == X86_ELF_MAX_SEGS)
				return elf_fail(
					why,
					"ELF file has too many PT_LOAD segments");
			out->segs[out->nr_segs++] = (struct x86_elf_seg){
				.offset = off,
				.paddr = paddr,
				.filesz = filesz,
				.memsz = memsz,
			};
			if (paddr < out->lo)
				out->lo = paddr;
			if (paddr + memsz > out->hi)
				out->hi = paddr + memsz;
			break;
		case PT_NOTE: {
			/* gABI: 8-aligned note segments pad names and descs to 8. */
			uint64_t align = le64toh(ph.p_align) == 8 ? 8 : 4;
			int err;

			if (!in_file(off, filesz, len))
				return elf_fail(
					why,
					"ELF PT_NOTE segment lies outside the file");
			if (out->pvh_entry)
				break;
			/*
			 * Overlapping note segments would make the walk
			 * quadratic in the file size: each byte once.
			 */
			if (filesz > note_budget)
				return elf_fail(
					why,
					"ELF PT_NOTE segments add up to more than the file");
			note_budget -= filesz;
			err = find_pvh_note(f + off, filesz, align,
					    &out->pvh_entry, why);
			if (err)
				return err;
			break;
		}
		default:
			break;
		}
	}
	if (!out->nr_segs)
		return elf_fail(why, "ELF file has no PT_LOAD segment to load");
	return 0;
}

/* --- bzImage and the zero page (Documentation/x86/boot.rst) ---------------- */

/* struct setup_header: boot_params offset 0x1f1, the same in the bzImage. */
struct x86_setup_header {
	uint8_t setup_sects; /* 0x1f1 */
	uint16_t root_flags;
	uint32_t syssize;
	uint16_t ram_size;
	uint16_t vid_mode;
	uint16_t root_dev;
	uint16_t boot_flag; /* 0x1fe */
	uint16_t jump; /* 0x200 */
	uint32_t header; /* 0x202 */
	uint16_t version; /* 0x206 */
	uint32_t realmode_swtch;
	uint16_t start_sys_seg;
	uint16_t kernel_version;
	uint8_t type_of_loader; /* 0x210 */
	uint8_t loadflags; /* 0x211 */
	uint16_t setup_move_size;
	uint32_t code32_start;
	uint32_t ramdisk_image; /* 0x218 */
	uint32_t ramdisk_size; /* 0x21c */
	uint32_t bootsect_kludge;
	uint16_t heap_end_ptr; /* 0x224 */
	uint8_t ext_loader_ver;
	uint8_t ext_loader_type;
	uint32_t cmd_line_ptr; /* 0x228 */
	uint32_t initrd_addr_max; /* 0x22c */
	uint32_t kernel_alignment; /* 0x230 */
	uint8_t relocatable_kernel; /* 0x234 */
	uint8_t min_alignment;
	uint16_t xloadflags; /* 0x236 */
	uint32_t cmdline_size; /* 0x238 */
	uint32_t hardware_subarch;
	uint64_t hardware_subarch_data;
	uint32_t payload_offset;
	uint32_t payload_length;
	uint64_t setup_data;
	uint64_t pref_address; /* 0x258 */
	uint32_t init_size; /* 0x260 */
	uint32_t handover_offset;
	uint32_t kernel_info_offset; /* 0x268 */
} __attribute__((packed));

#define HDR_OFF 0x1f1
#define HDR_AT(field) (HDR_OFF + offsetof(struct x86_setup_header, field))
_Static_assert(HDR_AT(boot_flag) == 0x1fe, "boot.rst: boot_flag");
_Static_assert(HDR_AT(header) == 0x202, "boot.rst: header");
_Static_assert(HDR_AT(type_of_loader) == 0x210, "boot.rst: type_of_loader");
_Static_assert(HDR_AT(ramdisk_image) == 0x218, "boot.rst: ramdisk_image");
_Static_assert(HDR_AT(heap_end_ptr) == 0x224, "boot.rst: heap_end_ptr");
_Static_assert(HDR_AT(cmd_line_ptr) == 0x228, "boot.rst: cmd_line_ptr");
_Static_assert(HDR_AT(xloadflags) == 0x236, "boot.rst: xloadflags");
_Static_assert(HDR_AT(cmdline_size) == 0x238, "boot.rst: cmdline_size");
_Static_assert(HDR_AT(pref_address) == 0x258, "boot.rst: pref_address");
_Static_assert(HDR_AT(init_size) == 0x260, "boot.rst: init_size");
_Static_assert(HDR_AT(kernel_info_offset) == 0x268, "boot.rst: kernel_info");
_Static_assert(sizeof(struct x86_setup_header) == 0x7b, "setup_header");

/* struct boot_params, with only the fields a loader writes named. */
struct x86_boot_params {
	uint8_t _pad0[0xc0];
	uint32_t ext_ramdisk_image; /* 0x0c0 */
	uint32_t ext_ramdisk_size; /* 0x0c4 */
	uint32_t ext_cmd_line_ptr; /* 0x0c8 */
	uint8_t _pad1[0x1e8 - 0xcc];
	uint8_t e820_entries; /* 0x1e8 */
	uint8_t _pad2[HDR_OFF - 0x1e9]; /* ..., sentinel: left 0 */
	struct x86_setup_header hdr; /* 0x1f1 */
	uint8_t _pad3[0x290 - HDR_OFF - sizeof(struct x86_setup_header)];
	uint32_t edd_mbr_sig_buffer[16]; /* 0x290 */
	struct x86_e820_entry e820_table[X86_ZERO_PAGE_E820_MAX]; /* 0x2d0 */
	uint8_t _pad4[X86_ZERO_PAGE_SIZE - 0xcd0];
} __attribute__((packed));
_Static_assert(offsetof(struct x86_boot_params, ext_ramdisk_image) == 0xc0,
	       "zero-page.rst: ext_ramdisk_image");
_Static_assert(offsetof(struct x86_boot_params, ext_cmd_line_ptr) == 0xc8,
	       "zero-page.rst: ext_cmd_line_ptr");
_Static_assert(offsetof(struct x86_boot_params, e820_entries) == 0x1e8,
	       "zero-page.rst: e820_entries");
_Static_assert(offsetof(struct x86_boot_params, hdr) == HDR_OFF,
	       "zero-page.rst: hdr");
_Static_assert(offsetof(struct x86_boot_params, e820_table) == 0x2d0,
	       "zero-page.rst: e820_table");
_Static_assert(sizeof(struct x86_boot_params) == X86_ZERO_PAGE_SIZE,
	       "boot_params is one page");

/* The header copied into the zero page stops where boot_params goes on. */
#define HDR_COPY_END offsetof(struct x86_boot_params, edd_mbr_sig_buffer)

#define BOOT_FLAG 0xaa55
#define HDRS_MAGIC 0x53726448 /* "HdrS" */
#define LOADED_HIGH (1 << 0)
#define CAN_USE_HEAP (1 << 7)
#define XLF_KERNEL_64 (1 << 0)
#define LOADER_UNDEFINED 0xff
/* boot.rst's example for a modern bzImage: the heap ends at 0xfe00. */
#define HEAP_END 0xfe00
#define ELF_KERNEL_ALIGNMENT 0x1000000

static int bz_fail(const char **why, const char *reason)
{
	*why = reason;
	return -ENOEXEC;
}

int x86_boot__parse_bzimage(const void *file, size_t len,
			    struct x86_bzimage *out, const char **why)
{
	const uint8_t *f = file;
	struct x86_setup_header h;
	uint64_t hdr_end, sects;

	memset(out, 0, sizeof(*out));
	/* Everything up to init_size is read; protocol 2.12 headers hold it. */
	if (len < HDR_AT(init_size) + sizeof(h.init_size))
		return bz_fail(
			why,
			"file is too short to hold a bzImage setup header");
	/* Older headers end before kernel_info_offset; unread fields stay 0. */
	memset(&h, 0, sizeof(h));
	memcpy(&h, f + HDR_OFF, min_u64(sizeof(h), len - HDR_OFF));
	if (le16toh(h.boot_flag) != BOOT_FLAG)
		return bz_fail(
			why,
			"no boot sector signature 0xAA55 at 0x1fe: not a bzImage");
	if (le32toh(h.header) != HDRS_MAGIC)
		return bz_fail(
			why,
			"no \"HdrS\" at 0x202: not a bzImage, or one older than boot protocol 2.00");
	out->version = le16toh(h.version);
	if (out->version < X86_BZIMAGE_MIN_VERSION)
		return bz_fail(
			why,
			"bzImage boot protocol is older than 2.12 (Linux 3.8)");
	out->xloadflags = le16toh(h.xloadflags);
	if (!(out->xloadflags & XLF_KERNEL_64))
		return bz_fail(
			why,
			"bzImage has no 64-bit entry point (XLF_KERNEL_64 clear): a 32-bit kernel?");
	/* The jump at 0x200 skips the header: its byte offset says where it ends. */
	hdr_end = 0x202 + (uint64_t)f[0x201];
	if (hdr_end < HDR_AT(init_size) + sizeof(h.init_size))
		return bz_fail(
			why,
			"bzImage setup header (0x202 + the byte at 0x201) ends before init_size");
	sects = h.setup_sects ? h.setup_sects : 4;
	out->setup_size = (sects + 1) * 512;
	/* hdr_end is at most 0x301, below the smallest setup_size, 0x400. */
	if (out->setup_size > len)
		return bz_fail(
			why,
			"bzImage setup sectors run past the end of the file");
	out->kernel_size = len - out->setup_size;
	if (out->kernel_size <= X86_BZIMAGE_ENTRY64)
		return bz_fail(
			why,
			"bzImage has no protected-mode kernel past its 64-bit entry point");
	out->init_size = le32toh(h.init_size);
	if (out->init_size < out->kernel_size)
		return bz_fail(
			why,
			"bzImage init_size is smaller than its protected-mode kernel");
	out->pref_address = le64toh(h.pref_address);
	out->kernel_alignment = le32toh(h.kernel_alignment);
	out->relocatable = h.relocatable_kernel != 0;
	if (out->relocatable &&
	    (!out->kernel_alignment ||
	     (out->kernel_alignment & (out->kernel_alignment - 1))))
		return bz_fail(
			why,
			"relocatable bzImage has a kernel_alignment that is not a power of two");
	out->cmdline_size = le32toh(h.cmdline_size);
	out->initrd_addr_max = le32toh(h.initrd_addr_max);
	return 0;
}

int x86_boot__zero_page(void *zp, const void *bzimage, size_t len,
			uint64_t cmdline_gpa, uint32_t cmdline_size,
			uint64_t initrd_gpa, uint64_t initrd_size,
			const struct x86_e820_entry *e, unsigned int nr_e820)
{
	struct x86_boot_params *bp = zp;
	struct x86_bzimage bz;
	const char *why;

	if (!nr_e820 || nr_e820 > X86_ZERO_PAGE_E820_MAX)
		return -EINVAL;
	if (initrd_size > UINT64_MAX - initrd_gpa)
		return -EINVAL;
	if (bzimage) {
		if (x86_boot__parse_bzimage(bzimage, len, &bz, &why))
			return -ENOEXEC;
		if (cmdline_size > bz.cmdline_size)
			return -E2BIG;
	}

	memset(bp, 0, sizeof(*bp));
	if (bzimage) {
		const uint8_t *f = bzimage;
		uint64_t end = 0x202 + (uint64_t)f[0x201];

		if (end > HDR_COPY_END)
			end = HDR_COPY_END;
		memcpy((uint8_t *)bp + HDR_OFF, f + HDR_OFF, end - HDR_OFF);
		bp->hdr.loadflags |= CAN_USE_HEAP;
		bp->hdr.heap_end_ptr = htole16(HEAP_END);
	} else {
		bp->hdr.boot_flag = htole16(BOOT_FLAG);
		bp->hdr.header = htole32(HDRS_MAGIC);
		bp->hdr.version = htole16(X86_BZIMAGE_MIN_VERSION);
		bp->hdr.kernel_alignment = htole32(ELF_KERNEL_ALIGNMENT);
	}
	bp->hdr.type_of_loader = LOADER_UNDEFINED;
	bp->hdr.loadflags |= LOADED_HIGH;
	bp->hdr.cmd_line_ptr = htole32((uint32_t)cmdline_gpa);
	bp->ext_cmd_line_ptr = htole32((uint32_t)(cmdline_gpa >> 32));
	bp->hdr.cmdline_size = htole32(cmdline_size);
	if (initrd_size) {
		bp->hdr.ramdisk_image = htole32((uint32_t)initrd_gpa);
		bp->ext_ramdisk_image = htole32((uint32_t)(initrd_gpa >> 32));
		bp->hdr.ramdisk_size = htole32((uint32_t)initrd_size);
		bp->ext_ramdisk_size = htole32((uint32_t)(initrd_size >> 32));
	}
	bp->e820_entries = (uint8_t)nr_e820;
	memcpy(bp->e820_table, e, nr_e820 * sizeof(*e));
	return 0;
}

/* --- PVH (xen/interface/hvm/start_info.h) ---------------------------------- */

struct hvm_start_info {
	uint32_t magic;
	uint32_t version;
	uint32_t flags;
	uint32_t nr_modules;
	uint64_t modlist_paddr;
	uint64_t cmdline_paddr;
	uint64_t rsdp_paddr;
	uint64_t memmap_paddr; /* version 1 */
	uint32_t memmap_entries;
	uint32_t reserved;
} __attribute__((packed));
_Static_assert(sizeof(struct hvm_start_info) == X86_PVH_START_INFO_SIZE,
	       "hvm_start_info v1");
_Static_assert(offsetof(struct hvm_start_info, memmap_paddr) == 40,
	       "start_info.h: memmap_paddr");

struct hvm_modlist_entry {
	uint64_t paddr;
	uint64_t size;
	uint64_t cmdline_paddr;
	uint64_t reserved;
} __attribute__((packed));
_Static_assert(sizeof(struct hvm_modlist_entry) == X86_PVH_MODLIST_ENTRY_SIZE,
	       "hvm_modlist_entry");

struct hvm_memmap_table_entry {
	uint64_t addr;
	uint64_t size;
	uint32_t type;
	uint32_t reserved;
} __attribute__((packed));
_Static_assert(sizeof(struct hvm_memmap_table_entry) ==
		       X86_PVH_MEMMAP_ENTRY_SIZE,
	       "hvm_memmap_table_entry");

int x86_boot__pvh_info(void *info, size_t info_size, uint64_t info_gpa,
		       void *memmap, size_t memmap_size, uint64_t memmap_gpa,
		       uint64_t cmdline_gpa, uint64_t initrd_gpa,
		       uint64_t initrd_size, const struct x86_e820_entry *e,
		       unsigned int nr_e820)
{
	struct hvm_start_info si;
	size_t need_info = sizeof(si);
	unsigned int i;

	if (!nr_e820 || initrd_size > UINT64_MAX - initrd_gpa)
		return -EINVAL;
	if (initrd_size)
		need_info += sizeof(struct hvm_modlist_entry);
	if (info_size < need_info ||
	    memmap_size / X86_PVH_MEMMAP_ENTRY_SIZE < nr_e820)
		return -ENOSPC;

	memset(&si, 0, sizeof(si));
	si.magic = htole32(X86_PVH_MAGIC);
	si.version = htole32(1);
	si.cmdline_paddr = htole64(cmdline_gpa);
	si.memmap_paddr = htole64(memmap_gpa);
	si.memmap_entries = htole32(nr_e820);
	if (initrd_size) {
		struct hvm_modlist_entry mod = {
			.paddr = htole64(initrd_gpa),
			.size = htole64(initrd_size),
		};

		si.nr_modules = htole32(1);
		si.modlist_paddr = htole64(info_gpa + sizeof(si));
		memcpy((uint8_t *)info + sizeof(si), &mod, sizeof(mod));
	}
	memcpy(info, &si, sizeof(si));

	for (i = 0; i < nr_e820; i++) {
		/* e is already little-endian, as boot_params holds it. */
		struct hvm_memmap_table_entry m = {
			.addr = e[i].addr,
			.size = e[i].size,
			.type = e[i].type,
		};

		memcpy((uint8_t *)memmap + i * sizeof(m), &m, sizeof(m));
	}
	return 0;
}

/* --- page tables and GDT --------------------------------------------------- */

void x86_boot__page_tables(void *pml4, void *pdpt, void *pd)
{
	uint64_t v;
	unsigned int i;

	memset(pml4, 0, 4096);
	memset(pdpt, 0, 4096);
	v = htole64(X86_PDPT | X86_PTE_PRESENT | X86_PTE_RW);
	memcpy(pml4, &v, sizeof(v));
	v = htole64(X86_PD | X86_PTE_PRESENT | X86_PTE_RW);
	memcpy(pdpt, &v, sizeof(v));
	for (i = 0; i < 512; i++) {
		v = htole64(((uint64_t)i << 21) | X86_PTE_PRESENT | X86_PTE_RW |
			    X86_PTE_PS);
		memcpy((uint8_t *)pd + i * sizeof(v), &v, sizeof(v));
	}
}

void x86_boot__gdt(uint64_t *gdt, unsigned int n, enum x86_boot_mode mode)
{
	const uint64_t table[X86_GDT_ENTRIES] = {
		0,
		mode == X86_BOOT_PVH32 ? X86_GDT_CODE32 : X86_GDT_CODE64,
		X86_GDT_DATA,
		X86_GDT_TSS,
	};
	unsigned int i;

	for (i = 0; i < n; i++)
		gdt[i] = htole64(i < X86_GDT_ENTRIES ? table[i] : 0);
}

void x86_boot__seg(uint64_t desc, uint16_t selector, struct x86_seg *out)
{
	uint32_t limit = (uint32_t)((desc & 0xffff) | ((desc >> 32) & 0xf0000));

	out->base = ((desc >> 16) & 0xffffff) | ((desc >> 32) & 0xff000000);
	out->selector = selector;
	out->type = (desc >> 40) & 0xf;
	out->s = (desc >> 44) & 1;
	out->dpl = (desc >> 45) & 3;
	out->present = (desc >> 47) & 1;
	out->avl = (desc >> 52) & 1;
	out->l = (desc >> 53) & 1;
	out->db = (desc >> 54) & 1;
	out->g = (desc >> 55) & 1;
	/* KVM takes the limit in bytes: granularity scales it by 4 KiB pages. */
	out->limit = out->g ? (limit << 12) | 0xfff : limit;
	out->unusable = !out->present;
}
