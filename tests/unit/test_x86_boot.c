// SPDX-License-Identifier: Apache-2.0
// x86_64 boot structures: e820, MP table, ELF and bzImage parsing, zero page, PVH, page tables, GDT.
#include <criterion/criterion.h>
#include <elf.h>
#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../../vmm/arch/x86_64/boot.h"

/* The kernel's own layout, where this host has it (x86 linux-libc-dev). */
#if defined(__x86_64__) && __has_include(<asm/bootparam.h>)
#include <asm/bootparam.h>
#define HAVE_UAPI_BOOTPARAM 1
#endif

static const char *why;

static uint16_t rd16(const void *p, size_t off)
{
	uint16_t v;

	memcpy(&v, (const uint8_t *)p + off, sizeof(v));
	return le16toh(v);
}

static uint32_t rd32(const void *p, size_t off)
{
	uint32_t v;

	memcpy(&v, (const uint8_t *)p + off, sizeof(v));
	return le32toh(v);
}

static uint64_t rd64(const void *p, size_t off)
{
	uint64_t v;

	memcpy(&v, (const uint8_t *)p + off, sizeof(v));
	return le64toh(v);
}

static void wr16(void *p, size_t off, uint16_t v)
{
	v = htole16(v);
	memcpy((uint8_t *)p + off, &v, sizeof(v));
}

static void wr32(void *p, size_t off, uint32_t v)
{
	v = htole32(v);
	memcpy((uint8_t *)p + off, &v, sizeof(v));
}

static void wr64(void *p, size_t off, uint64_t v)
{
	v = htole64(v);
	memcpy((uint8_t *)p + off, &v, sizeof(v));
}

static uint8_t sum8(const void *p, size_t len)
{
	const uint8_t *b = p;
	uint8_t s = 0;

	while (len--)
		s += *b++;
	return s;
}

/* A deterministic xorshift, for the mutation loops. */
static uint64_t next_rand(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* --- e820 ------------------------------------------------------------------ */

static void assert_entry(const struct x86_e820_entry *e, uint64_t addr,
			 uint64_t size, uint32_t type)
{
	cr_assert_eq(le64toh(e->addr), addr, "addr %#llx",
		     (unsigned long long)le64toh(e->addr));
	cr_assert_eq(le64toh(e->size), size, "size %#llx",
		     (unsigned long long)le64toh(e->size));
	cr_assert_eq(le32toh(e->type), type);
}

Test(x86_e820, maps_low_ram_the_bios_hole_and_high_ram)
{
	static const uint64_t sizes[] = { 2 * SZ_1M, 64 * SZ_1M, SZ_1G,
					  X86_RAM_MAX_SIZE };
	struct x86_e820_entry e[4];
	size_t i;

	for (i = 0; i < ARRAY_SIZE(sizes); i++) {
		cr_assert_eq(x86_boot__e820(sizes[i], e, 4), 3);
		assert_entry(&e[0], 0, 0x9fc00, X86_E820_RAM);
		assert_entry(&e[1], 0x9fc00, 0x100000 - 0x9fc00,
			     X86_E820_RESERVED);
		assert_entry(&e[2], 0x100000, sizes[i] - 0x100000,
			     X86_E820_RAM);
	}
}

Test(x86_e820, has_no_high_entry_for_ram_up_to_1m)
{
	struct x86_e820_entry e[4];

	cr_assert_eq(x86_boot__e820(SZ_1M, e, 4), 2);
	assert_entry(&e[0], 0, X86_EBDA, X86_E820_RAM);
	assert_entry(&e[1], X86_EBDA, X86_EBDA_END - X86_EBDA,
		     X86_E820_RESERVED);
	cr_assert_eq(x86_boot__e820(512 * 1024, e, 4), 2);
	assert_entry(&e[0], 0, 512 * 1024, X86_E820_RAM);
	cr_assert_eq(x86_boot__e820(0, e, 4), 1);
	assert_entry(&e[0], X86_EBDA, X86_EBDA_END - X86_EBDA,
		     X86_E820_RESERVED);
}

Test(x86_e820, writes_no_more_than_max)
{
	struct x86_e820_entry e[3];

	memset(e, 0xee, sizeof(e));
	cr_assert_eq(x86_boot__e820(SZ_1G, e, 1), 1);
	assert_entry(&e[0], 0, X86_EBDA, X86_E820_RAM);
	cr_assert_eq(e[1].type, 0xeeeeeeee);
	cr_assert_eq(x86_boot__e820(SZ_1G, e, 0), 0);
}

Test(x86_e820, entries_are_20_packed_bytes)
{
	struct x86_e820_entry e[3];

	cr_assert_eq(x86_boot__e820(SZ_1G, e, 3), 3);
	/* boot_params.e820_table: addr at 0, size at 8, type at 16, stride 20. */
	cr_assert_eq(rd64(e, 20 + 0), X86_EBDA);
	cr_assert_eq(rd64(e, 20 + 8), X86_EBDA_END - X86_EBDA);
	cr_assert_eq(rd32(e, 20 + 16), X86_E820_RESERVED);
	cr_assert_eq(rd64(e, 40), X86_HIGH_RAM);
}

/* --- MP table -------------------------------------------------------------- */

#define MP_GPA ((uint32_t)X86_EBDA)

struct mp_counts {
	unsigned int cpu, bus, ioapic, intsrc, lintsrc;
};

/* Walks the configuration table the way Linux's smp_read_mpc() does. */
static struct mp_counts walk_mptable(const uint8_t *buf, unsigned int nr_cpus)
{
	const uint8_t *mpc = buf + 16;
	uint16_t len = rd16(mpc, 4);
	struct mp_counts c = { 0 };
	size_t off = 44;
	unsigned int ioapic_id = nr_cpus;

	while (off < len) {
		const uint8_t *p = mpc + off;

		switch (p[0]) {
		case 0:
			cr_assert_eq(p[1], c.cpu, "APIC ids in order");
			cr_assert_eq(p[2], 0x14);
			cr_assert_eq(p[3], c.cpu == 0 ? 3 : 1,
				     "cpu %u flags %#x", c.cpu, p[3]);
			cr_assert_eq(rd32(p, 4), 0x600);
			cr_assert_eq(rd32(p, 8), 0x201);
			c.cpu++;
			off += 20;
			break;
		case 1:
			cr_assert_eq(p[1], 0);
			cr_assert_eq(memcmp(p + 2, "ISA   ", 6), 0);
			c.bus++;
			off += 8;
			break;
		case 2:
			cr_assert_eq(p[1], ioapic_id);
			cr_assert_eq(p[2], 0x11);
			cr_assert_eq(p[3], 1, "enabled");
			cr_assert_eq(rd32(p, 4), X86_IOAPIC_BASE);
			c.ioapic++;
			off += 8;
			break;
		case 3:
			cr_assert_eq(p[1], 0, "mp_INT");
			cr_assert_eq(rd16(p, 2), 0, "conforming");
			cr_assert_eq(p[4], 0, "source bus ISA");
			cr_assert_eq(p[5], c.intsrc, "ISA IRQ");
			cr_assert_eq(p[6], ioapic_id);
			cr_assert_eq(p[7], c.intsrc, "IRQ n on pin n");
			c.intsrc++;
			off += 8;
			break;
		case 4:
			cr_assert_eq(p[1], c.lintsrc == 0 ? 3 : 1,
				     "ExtINT then NMI");
			cr_assert_eq(p[6], 0xff, "all local APICs");
			cr_assert_eq(p[7], c.lintsrc, "LINT0 then LINT1");
			c.lintsrc++;
			off += 8;
			break;
		default:
			cr_assert_fail("unknown MP entry type %u at %zu", p[0],
				       off);
		}
	}
	cr_assert_eq(off, len, "entries end where the table says");
	return c;
}

Test(x86_mptable, builds_a_table_linux_accepts)
{
	static const unsigned int cpus[] = { 1, 2, 7, ARCH_MAX_VCPUS, 254 };
	static uint8_t buf[8192];
	size_t i;

	for (i = 0; i < ARRAY_SIZE(cpus); i++) {
		unsigned int n = cpus[i];
		struct mp_counts c;
		int len;

		memset(buf, 0xa5, sizeof(buf));
		len = x86_boot__mptable(buf, sizeof(buf), MP_GPA, n);
		cr_assert_eq(len, (int)X86_MPTABLE_SIZE(n), "%u cpus: %d", n,
			     len);
		cr_assert_eq(len, 16 + 44 + 20 * n + 8 + 8 + 24 * 8 + 16);
		/* Floating pointer: "_MP_", physptr, 1 paragraph, spec 1.4. */
		cr_assert_eq(memcmp(buf, "_MP_", 4), 0);
		cr_assert_eq(rd32(buf, 4), MP_GPA + 16);
		cr_assert_eq(buf[8], 1);
		cr_assert_eq(buf[9], 4);
		cr_assert_eq(sum8(buf, 16), 0, "floating pointer checksum");
		cr_assert_eq(buf[11], 0, "feature1: a table, not a default");
		/* Configuration table. */
		cr_assert_eq(memcmp(buf + 16, "PCMP", 4), 0);
		cr_assert_eq(rd16(buf, 16 + 4), len - 16);
		cr_assert_eq(buf[16 + 6], 4);
		cr_assert_eq(sum8(buf + 16, len - 16), 0, "table checksum");
		cr_assert_eq(rd16(buf, 16 + 34), n + 1 + 1 + 24 + 2,
			     "entry count");
		cr_assert_eq(rd32(buf, 16 + 36), X86_LAPIC_BASE);
		c = walk_mptable(buf, n);
		cr_assert_eq(c.cpu, n);
		cr_assert_eq(c.bus, 1);
		cr_assert_eq(c.ioapic, 1);
		cr_assert_eq(c.intsrc, X86_IOAPIC_PINS);
		cr_assert_eq(c.lintsrc, 2);
		cr_assert_eq(buf[len], 0xa5, "nothing written past the table");
	}
}

Test(x86_mptable, fits_in_the_reserved_ebda_for_every_vcpu_count)
{
	/* Linux scans [X86_EBDA, X86_EBDA + 1 KiB) for the floating pointer. */
	cr_assert_eq(X86_EBDA, 639 * 1024);
	cr_assert_leq(X86_MPTABLE_SIZE(ARCH_MAX_VCPUS), 1024);
	cr_assert_leq(X86_MPTABLE_SIZE(X86_MPTABLE_MAX_CPUS),
		      X86_EBDA_END - X86_EBDA);
}

Test(x86_mptable, refuses_a_small_buffer_without_writing)
{
	uint8_t buf[4096];
	size_t need = X86_MPTABLE_SIZE(4);

	memset(buf, 0xa5, sizeof(buf));
	cr_assert_eq(x86_boot__mptable(buf, need - 1, MP_GPA, 4), -ENOSPC);
	cr_assert_eq(x86_boot__mptable(buf, 0, MP_GPA, 4), -ENOSPC);
	cr_assert_eq(buf[0], 0xa5);
	cr_assert_eq(x86_boot__mptable(buf, need, MP_GPA, 4), (int)need);
}

Test(x86_mptable, refuses_bad_cpu_counts_and_addresses)
{
	uint8_t buf[8192];

	cr_assert_eq(x86_boot__mptable(buf, sizeof(buf), MP_GPA, 0), -EINVAL);
	cr_assert_eq(x86_boot__mptable(buf, sizeof(buf), MP_GPA, 255), -EINVAL);
	cr_assert_eq(x86_boot__mptable(buf, sizeof(buf), MP_GPA + 8, 1),
		     -EINVAL);
	cr_assert_eq(x86_boot__mptable(buf, sizeof(buf), 0xffffff00, 1),
		     -EINVAL, "the table would cross 4 GiB");
	cr_assert_eq(x86_boot__mptable(buf, sizeof(buf), 0xfffff000, 1),
		     (int)X86_MPTABLE_SIZE(1));
	cr_assert_eq(rd32(buf, 4), 0xfffff010);
}

/* --- ELF ------------------------------------------------------------------- */

#define ELF_LEN 0x500
#define ELF_NOTE_OFF 0x400
#define PVH_ENTRY 0x1000abcULL
#define VMLINUX_ENTRY 0xffffffff81000000ULL

static size_t put_note(uint8_t *f, size_t pos, const char *name, uint32_t type,
		       const void *desc, uint32_t descsz, size_t align)
{
	uint32_t namesz = (uint32_t)strlen(name) + 1;

	wr32(f, pos, namesz);
	wr32(f, pos + 4, descsz);
	wr32(f, pos + 8, type);
	pos += 12;
	memcpy(f + pos, name, namesz);
	pos += (namesz + align - 1) / align * align;
	memcpy(f + pos, desc, descsz);
	pos += (descsz + align - 1) / align * align;
	return pos;
}

static void put_phdr(uint8_t *f, unsigned int i, uint32_t type, uint64_t off,
		     uint64_t paddr, uint64_t filesz, uint64_t memsz,
		     uint64_t align)
{
	size_t p = 64 + i * 56;

	wr32(f, p + 0, type);
	wr32(f, p + 4, 5);
	wr64(f, p + 8, off);
	wr64(f, p + 16, paddr + 0xffffffff80000000ULL); /* p_vaddr */
	wr64(f, p + 24, paddr);
	wr64(f, p + 32, filesz);
	wr64(f, p + 40, memsz);
	wr64(f, p + 48, align);
}

/*
 * A vmlinux in miniature: two PT_LOAD segments and a PT_NOTE with a GNU
 * build-id, a Xen note of another type and, when @pvh_descsz is 4 or 8, the
 * PHYS32_ENTRY note, at most ELF_LEN bytes. Returns where the notes end:
 * the file's length, as nothing follows them.
 */
static size_t build_elf(uint8_t *f, uint32_t pvh_descsz)
{
	static const uint8_t build_id[20] = { 1, 2, 3 };
	uint64_t entry64 = htole64(PVH_ENTRY), xen_entry = htole64(~0ULL);
	uint32_t entry32 = htole32((uint32_t)PVH_ENTRY);
	size_t pos = ELF_NOTE_OFF;

	memset(f, 0, ELF_LEN);
	memcpy(f, ELFMAG, SELFMAG);
	f[EI_CLASS] = ELFCLASS64;
	f[EI_DATA] = ELFDATA2LSB;
	f[EI_VERSION] = EV_CURRENT;
	wr16(f, 16, ET_EXEC);
	wr16(f, 18, EM_X86_64);
	wr32(f, 20, EV_CURRENT);
	wr64(f, 24, VMLINUX_ENTRY);
	wr64(f, 32, 64); /* e_phoff */
	wr16(f, 52, 64); /* e_ehsize */
	wr16(f, 54, 56); /* e_phentsize */
	wr16(f, 56, 3); /* e_phnum */

	pos = put_note(f, pos, "GNU", 3, build_id, sizeof(build_id), 4);
	pos = put_note(f, pos, "Xen", 1, &xen_entry, 8, 4); /* ENTRY */
	if (pvh_descsz == 8)
		pos = put_note(f, pos, "Xen", 18, &entry64, 8, 4);
	else if (pvh_descsz)
		pos = put_note(f, pos, "Xen", 18, &entry32, pvh_descsz, 4);
	cr_assert_leq(pos, ELF_LEN);

	put_phdr(f, 0, PT_LOAD, 0x200, 0x1000000, 0x100, 0x300, 0x200000);
	put_phdr(f, 1, PT_LOAD, 0x300, 0x1200000, 0x80, 0x80, 0x200000);
	put_phdr(f, 2, PT_NOTE, ELF_NOTE_OFF, 0, pos - ELF_NOTE_OFF,
		 pos - ELF_NOTE_OFF, 4);
	return pos;
}

/* Parses a heap copy of exactly @len bytes, so ASan sees any overread. */
static int parse_elf_exact(const void *src, size_t len, struct x86_elf *out)
{
	void *copy = malloc(len ? len : 1);
	int err;

	cr_assert_not_null(copy);
	memcpy(copy, src, len);
	why = NULL;
	err = x86_boot__parse_elf(copy, len, out, &why);
	free(copy);
	if (err)
		cr_assert_not_null(why);
	return err;
}

static void assert_elf_refused(const uint8_t *f, size_t len, const char *what)
{
	struct x86_elf elf;

	cr_assert_eq(parse_elf_exact(f, len, &elf), -ENOEXEC);
	cr_assert(strstr(why, what), "\"%s\" not in \"%s\"", what, why);
}

Test(x86_elf, parses_load_segments_without_pvh_note)
{
	uint8_t f[ELF_LEN];
	size_t len = build_elf(f, 0);
	struct x86_elf elf;

	cr_assert_eq(parse_elf_exact(f, len, &elf), 0);
	cr_assert_eq(elf.nr_segs, 2);
	cr_assert_eq(elf.segs[0].offset, 0x200);
	cr_assert_eq(elf.segs[0].paddr, 0x1000000);
	cr_assert_eq(elf.segs[0].filesz, 0x100);
	cr_assert_eq(elf.segs[0].memsz, 0x300);
	cr_assert_eq(elf.segs[1].paddr, 0x1200000);
	cr_assert_eq(elf.entry, VMLINUX_ENTRY);
	cr_assert_eq(elf.pvh_entry, 0);
	cr_assert_eq(elf.lo, 0x1000000);
	cr_assert_eq(elf.hi, 0x1200080);
}

Test(x86_elf, finds_the_pvh_entry_as_32_or_64_bits)
{
	uint8_t f[ELF_LEN];
	struct x86_elf elf;

	cr_assert_eq(parse_elf_exact(f, build_elf(f, 8), &elf), 0);
	cr_assert_eq(elf.pvh_entry, PVH_ENTRY);
	cr_assert_eq(parse_elf_exact(f, build_elf(f, 4), &elf), 0);
	cr_assert_eq(elf.pvh_entry, PVH_ENTRY);
	cr_assert_eq(elf.nr_segs, 2);
}

Test(x86_elf, reads_8_aligned_note_segments)
{
	uint8_t f[ELF_LEN];
	uint32_t entry32 = htole32((uint32_t)PVH_ENTRY);
	struct x86_elf elf;
	size_t pos;

	build_elf(f, 0);
	/* "GNU\0" pads to 8 here: a 4-aligned reader would miss the next. */
	pos = put_note(f, ELF_NOTE_OFF, "GNU", 5, "abcd", 4, 8);
	pos = put_note(f, pos, "Xen", 18, &entry32, 4, 8);
	put_phdr(f, 2, PT_NOTE, ELF_NOTE_OFF, 0, pos - ELF_NOTE_OFF,
		 pos - ELF_NOTE_OFF, 8);
	cr_assert_eq(parse_elf_exact(f, ELF_LEN, &elf), 0);
	cr_assert_eq(elf.pvh_entry, PVH_ENTRY);
}

Test(x86_elf, ignores_other_notes_named_or_typed_alike)
{
	uint8_t f[ELF_LEN];
	uint64_t entry64 = htole64(PVH_ENTRY);
	struct x86_elf elf;
	size_t pos;

	build_elf(f, 0);
	pos = put_note(f, ELF_NOTE_OFF, "Xe", 18, &entry64, 8, 4);
	pos = put_note(f, pos, "Xenon", 18, &entry64, 8, 4);
	pos = put_note(f, pos, "Xen", 17, &entry64, 8, 4);
	put_phdr(f, 2, PT_NOTE, ELF_NOTE_OFF, 0, pos - ELF_NOTE_OFF,
		 pos - ELF_NOTE_OFF, 4);
	cr_assert_eq(parse_elf_exact(f, ELF_LEN, &elf), 0);
	cr_assert_eq(elf.pvh_entry, 0);
}

Test(x86_elf, refuses_bad_pvh_notes)
{
	uint8_t f[ELF_LEN];
	uint64_t high = htole64(0x100000000ULL), zero = 0;
	size_t pos;

	build_elf(f, 2);
	assert_elf_refused(f, ELF_LEN, "neither 4 nor 8");
	build_elf(f, 0);
	pos = put_note(f, ELF_NOTE_OFF, "Xen", 18, &high, 8, 4);
	put_phdr(f, 2, PT_NOTE, ELF_NOTE_OFF, 0, pos - ELF_NOTE_OFF,
		 pos - ELF_NOTE_OFF, 4);
	assert_elf_refused(f, ELF_LEN, "32-bit entry");
	pos = put_note(f, ELF_NOTE_OFF, "Xen", 18, &zero, 8, 4);
	assert_elf_refused(f, ELF_LEN, "32-bit entry");
}

Test(x86_elf, refuses_notes_running_past_their_segment)
{
	uint8_t f[ELF_LEN];

	build_elf(f, 8);
	wr32(f, ELF_NOTE_OFF, 0xfffffff0); /* namesz of the first note */
	assert_elf_refused(f, ELF_LEN, "note name");
	build_elf(f, 8);
	wr32(f, ELF_NOTE_OFF + 4, 0xffffffff); /* its descsz */
	assert_elf_refused(f, ELF_LEN, "note descriptor");
	build_elf(f, 8);
	put_phdr(f, 2, PT_NOTE, ELF_NOTE_OFF, 0, ELF_LEN, ELF_LEN, 4);
	assert_elf_refused(f, ELF_LEN, "PT_NOTE segment lies outside");
}

Test(x86_elf, refuses_note_segments_larger_than_the_file_together)
{
	uint8_t f[ELF_LEN];
	struct x86_elf elf;
	unsigned int i;

	/* PT_NOTEs over the same empty notes: two fill the file, three not. */
	build_elf(f, 0);
	for (i = 0; i < 3; i++)
		put_phdr(f, i, PT_NOTE, 0x100, 0, ELF_LEN / 2, ELF_LEN / 2, 4);
	assert_elf_refused(f, ELF_LEN, "more than the file");
	wr16(f, 56, 2);
	assert_elf_refused(f, ELF_LEN, "no PT_LOAD");
	/* Once the PVH entry is found, further notes are not walked. */
	build_elf(f, 8);
	put_phdr(f, 0, PT_NOTE, ELF_NOTE_OFF, 0, ELF_LEN - ELF_NOTE_OFF,
		 ELF_LEN - ELF_NOTE_OFF, 4);
	put_phdr(f, 2, PT_NOTE, 0, 0, ELF_LEN, ELF_LEN, 4);
	cr_assert_eq(parse_elf_exact(f, ELF_LEN, &elf), 0);
	cr_assert_eq(elf.pvh_entry, PVH_ENTRY);
	cr_assert_eq(elf.nr_segs, 1);
}

Test(x86_elf, refuses_other_files)
{
	uint8_t f[ELF_LEN];

	build_elf(f, 0);
	f[0] = 'M';
	assert_elf_refused(f, ELF_LEN, "magic");
	build_elf(f, 0);
	f[EI_CLASS] = ELFCLASS32;
	assert_elf_refused(f, ELF_LEN, "64-bit");
	build_elf(f, 0);
	f[EI_DATA] = ELFDATA2MSB;
	assert_elf_refused(f, ELF_LEN, "little-endian");
	build_elf(f, 0);
	wr16(f, 18, EM_AARCH64);
	assert_elf_refused(f, ELF_LEN, "EM_X86_64");
	build_elf(f, 0);
	wr16(f, 16, ET_DYN);
	assert_elf_refused(f, ELF_LEN, "ET_EXEC");
}

Test(x86_elf, refuses_truncated_files_at_every_length)
{
	uint8_t f[ELF_LEN];
	size_t end = build_elf(f, 8), len;
	struct x86_elf elf;

	/* The notes end the file: every cut lands in a header or a note. */
	cr_assert_eq(parse_elf_exact(f, end, &elf), 0);
	cr_assert_eq(elf.pvh_entry, PVH_ENTRY);
	for (len = 0; len < end; len++) {
		int err = parse_elf_exact(f, len, &elf);

		if (len < 64)
			cr_assert(strstr(why, "too short"), "%zu: %s", len,
				  why);
		cr_assert_eq(err, -ENOEXEC, "length %zu", len);
	}
}

Test(x86_elf, refuses_program_headers_outside_the_file)
{
	uint8_t f[ELF_LEN];

	build_elf(f, 0);
	wr64(f, 32, ELF_LEN - 56 * 3 + 1);
	assert_elf_refused(f, ELF_LEN, "program headers");
	wr64(f, 32, UINT64_MAX - 8); /* e_phoff + size wraps */
	assert_elf_refused(f, ELF_LEN, "program headers");
	build_elf(f, 0);
	wr16(f, 56, 0xffff);
	assert_elf_refused(f, ELF_LEN, "no program headers");
	wr16(f, 56, 0);
	assert_elf_refused(f, ELF_LEN, "no program headers");
	build_elf(f, 0);
	wr16(f, 54, 32);
	assert_elf_refused(f, ELF_LEN, "e_phentsize");
}

Test(x86_elf, refuses_bad_load_segments)
{
	uint8_t f[ELF_LEN];

	build_elf(f, 0);
	put_phdr(f, 0, PT_LOAD, UINT64_MAX - 0x10, 0x1000000, 0x100, 0x100, 0);
	assert_elf_refused(f, ELF_LEN, "outside the file");
	put_phdr(f, 0, PT_LOAD, 0x200, 0x1000000, ELF_LEN, ELF_LEN, 0);
	assert_elf_refused(f, ELF_LEN, "outside the file");
	put_phdr(f, 0, PT_LOAD, 0x200, 0x1000000, 0x100, 0x80, 0);
	assert_elf_refused(f, ELF_LEN, "p_filesz above p_memsz");
	put_phdr(f, 0, PT_LOAD, 0x200, UINT64_MAX - 0x100, 0x100, 0x200, 0);
	assert_elf_refused(f, ELF_LEN, "wraps");
	put_phdr(f, 0, PT_DYNAMIC, 0x200, 0, 0, 0, 0);
	put_phdr(f, 1, PT_LOAD, 0x300, 0x1200000, 0, 0, 0);
	assert_elf_refused(f, ELF_LEN, "no PT_LOAD");
}

Test(x86_elf, refuses_more_load_segments_than_it_holds)
{
	uint8_t f[0x1000];
	struct x86_elf elf;
	unsigned int i;

	memset(f, 0, sizeof(f));
	build_elf(f, 0);
	for (i = 0; i <= X86_ELF_MAX_SEGS; i++)
		put_phdr(f, i, PT_LOAD, 0x800 + i * 0x10, 0x1000000 + i * SZ_2M,
			 0x10, 0x10, 0);
	wr16(f, 56, X86_ELF_MAX_SEGS);
	cr_assert_eq(parse_elf_exact(f, sizeof(f), &elf), 0);
	cr_assert_eq(elf.nr_segs, X86_ELF_MAX_SEGS);
	cr_assert_eq(elf.hi, 0x1000000 + 7 * SZ_2M + 0x10);
	wr16(f, 56, X86_ELF_MAX_SEGS + 1);
	assert_elf_refused(f, sizeof(f), "too many PT_LOAD");
	/* Segments with nothing to load do not count. */
	put_phdr(f, 3, PT_LOAD, 0, 0, 0, 0, 0);
	cr_assert_eq(parse_elf_exact(f, sizeof(f), &elf), 0);
	cr_assert_eq(elf.nr_segs, X86_ELF_MAX_SEGS);
}

static void assert_elf_sane(const struct x86_elf *elf, size_t len)
{
	unsigned int i;

	cr_assert(elf->nr_segs >= 1 && elf->nr_segs <= X86_ELF_MAX_SEGS);
	for (i = 0; i < elf->nr_segs; i++) {
		const struct x86_elf_seg *s = &elf->segs[i];

		cr_assert_leq(s->filesz, s->memsz);
		cr_assert_leq(s->filesz, len);
		cr_assert_leq(s->offset, len - s->filesz);
		cr_assert_geq(s->paddr, elf->lo);
		cr_assert_leq(s->paddr + s->memsz, elf->hi);
	}
	cr_assert_leq(elf->pvh_entry, UINT32_MAX);
}

Test(x86_elf, survives_random_mutations)
{
	uint8_t good[ELF_LEN], f[ELF_LEN];
	uint64_t seed = 0x9e3779b97f4a7c15ULL;
	struct x86_elf elf;
	unsigned int i, j, ok = 0;

	build_elf(good, 8);
	for (i = 0; i < 20000; i++) {
		unsigned int flips = 1 + next_rand(&seed) % 4;
		int err;

		memcpy(f, good, sizeof(f));
		for (j = 0; j < flips; j++) {
			/* Mostly the headers and notes, where parsing happens. */
			size_t at = next_rand(&seed) % 2
					    ? next_rand(&seed) % (64 + 3 * 56)
					    : ELF_NOTE_OFF +
						      next_rand(&seed) % 0x100;
			f[at] = (uint8_t)next_rand(&seed);
		}
		err = parse_elf_exact(f, sizeof(f), &elf);
		cr_assert(err == 0 || err == -ENOEXEC, "%d", err);
		if (!err) {
			assert_elf_sane(&elf, sizeof(f));
			ok++;
		}
	}
	cr_assert_gt(ok, 0, "some mutations still parse");
}

/* --- bzImage --------------------------------------------------------------- */

#define BZ_SETUP_SECTS 4
#define BZ_SETUP_SIZE ((BZ_SETUP_SECTS + 1) * 512)
#define BZ_KERNEL_SIZE 0x1000
#define BZ_LEN (BZ_SETUP_SIZE + BZ_KERNEL_SIZE)
#define BZ_HDR_END 0x26c /* what "jmp start_of_setup" says for 2.15 */

/* A bzImage's first sectors with a protocol 2.15 header, as header.S lays it out. */
static void build_bzimage(uint8_t *f)
{
	memset(f, 0, BZ_LEN);
	f[0x1f1] = BZ_SETUP_SECTS;
	wr32(f, 0x1f4, BZ_KERNEL_SIZE / 16); /* syssize */
	wr16(f, 0x1fe, 0xaa55);
	f[0x200] = 0xeb;
	f[0x201] = BZ_HDR_END - 0x202;
	memcpy(f + 0x202, "HdrS", 4);
	wr16(f, 0x206, 0x020f);
	f[0x211] = 0x01; /* LOADED_HIGH */
	wr32(f, 0x214, 0x100000); /* code32_start */
	wr32(f, 0x22c, 0x7fffffff); /* initrd_addr_max */
	wr32(f, 0x230, 0x200000); /* kernel_alignment */
	f[0x234] = 1; /* relocatable_kernel */
	f[0x235] = 21; /* min_alignment */
	wr16(f, 0x236, 0x7f); /* xloadflags */
	wr32(f, 0x238, 2047); /* cmdline_size */
	wr64(f, 0x258, 0x1000000); /* pref_address */
	wr32(f, 0x260, 0x2000000); /* init_size */
	wr32(f, 0x268, 0x1234); /* kernel_info_offset */
	/* Setup code and the protected-mode kernel: anything but zeros. */
	memset(f + BZ_HDR_END, 0x90, BZ_SETUP_SIZE - BZ_HDR_END);
	memset(f + BZ_SETUP_SIZE, 0xcc, BZ_KERNEL_SIZE);
}

static int parse_bz_exact(const void *src, size_t len, struct x86_bzimage *out)
{
	void *copy = malloc(len ? len : 1);
	int err;

	cr_assert_not_null(copy);
	memcpy(copy, src, len);
	why = NULL;
	err = x86_boot__parse_bzimage(copy, len, out, &why);
	free(copy);
	if (err)
		cr_assert_not_null(why);
	return err;
}

static void assert_bz_refused(const uint8_t *f, size_t len, const char *what)
{
	struct x86_bzimage bz;

	cr_assert_eq(parse_bz_exact(f, len, &bz), -ENOEXEC);
	cr_assert(strstr(why, what), "\"%s\" not in \"%s\"", what, why);
}

Test(x86_bzimage, parses_a_good_header)
{
	static uint8_t f[BZ_LEN];
	struct x86_bzimage bz;

	build_bzimage(f);
	cr_assert_eq(parse_bz_exact(f, BZ_LEN, &bz), 0);
	cr_assert_eq(bz.setup_size, BZ_SETUP_SIZE);
	cr_assert_eq(bz.kernel_size, BZ_KERNEL_SIZE);
	cr_assert_eq(bz.init_size, 0x2000000);
	cr_assert_eq(bz.pref_address, 0x1000000);
	cr_assert_eq(bz.kernel_alignment, 0x200000);
	cr_assert_eq(bz.cmdline_size, 2047);
	cr_assert_eq(bz.initrd_addr_max, 0x7fffffff);
	cr_assert_eq(bz.version, 0x020f);
	cr_assert_eq(bz.xloadflags, 0x7f);
	cr_assert(bz.relocatable);
}

Test(x86_bzimage, reads_setup_sects_0_as_4)
{
	static uint8_t f[BZ_LEN];
	struct x86_bzimage bz;

	build_bzimage(f);
	f[0x1f1] = 0;
	cr_assert_eq(parse_bz_exact(f, BZ_LEN, &bz), 0);
	cr_assert_eq(bz.setup_size, 5 * 512);
	f[0x1f1] = 1;
	cr_assert_eq(parse_bz_exact(f, BZ_LEN, &bz), 0);
	cr_assert_eq(bz.setup_size, 2 * 512);
	cr_assert_eq(bz.kernel_size, BZ_LEN - 2 * 512);
	f[0x234] = 0; /* not relocatable: alignment is not checked */
	wr32(f, 0x230, 3);
	cr_assert_eq(parse_bz_exact(f, BZ_LEN, &bz), 0);
	cr_assert_not(bz.relocatable);
}

Test(x86_bzimage, refuses_other_files)
{
	static uint8_t f[BZ_LEN];

	build_bzimage(f);
	wr16(f, 0x1fe, 0x55aa);
	assert_bz_refused(f, BZ_LEN, "0xAA55");
	build_bzimage(f);
	memcpy(f + 0x202, "HdrT", 4);
	assert_bz_refused(f, BZ_LEN, "HdrS");
	build_bzimage(f);
	wr16(f, 0x206, 0x020b);
	assert_bz_refused(f, BZ_LEN, "2.12");
	build_bzimage(f);
	wr16(f, 0x236, 0x7e);
	assert_bz_refused(f, BZ_LEN, "XLF_KERNEL_64");
	/* An ELF vmlinux is not a bzImage, and the other way round. */
	{
		uint8_t elf[BZ_LEN];
		struct x86_elf e;

		memset(elf, 0, sizeof(elf));
		build_elf(elf, 8);
		assert_bz_refused(elf, sizeof(elf), "0xAA55");
		build_bzimage(f);
		cr_assert_eq(parse_elf_exact(f, BZ_LEN, &e), -ENOEXEC);
	}
}

Test(x86_bzimage, refuses_sizes_outside_the_file)
{
	static uint8_t f[BZ_LEN];
	struct x86_bzimage bz;
	size_t len;

	build_bzimage(f);
	for (len = 0; len < BZ_SETUP_SIZE + X86_BZIMAGE_ENTRY64 + 1; len++)
		cr_assert_eq(parse_bz_exact(f, len, &bz), -ENOEXEC, "len %zu",
			     len);
	cr_assert_eq(parse_bz_exact(f, len, &bz), 0);
	assert_bz_refused(f, 0x263, "too short");
	assert_bz_refused(f, 0x264, "setup sectors");
	assert_bz_refused(f, BZ_SETUP_SIZE + 0x200, "past its 64-bit entry");
	f[0x1f1] = 0xff;
	assert_bz_refused(f, BZ_LEN, "setup sectors run past");
	build_bzimage(f);
	f[0x201] = 0x5f; /* the header would end at 0x261, inside init_size */
	assert_bz_refused(f, BZ_LEN, "ends before init_size");
}

Test(x86_bzimage, refuses_inconsistent_fields)
{
	static uint8_t f[BZ_LEN];

	build_bzimage(f);
	wr32(f, 0x260, BZ_KERNEL_SIZE - 1);
	assert_bz_refused(f, BZ_LEN, "init_size");
	build_bzimage(f);
	wr32(f, 0x230, 0x300000);
	assert_bz_refused(f, BZ_LEN, "power of two");
	wr32(f, 0x230, 0);
	assert_bz_refused(f, BZ_LEN, "power of two");
}

Test(x86_bzimage, survives_random_mutations)
{
	static uint8_t good[BZ_LEN], f[BZ_LEN];
	uint64_t seed = 0x2545f4914f6cdd1dULL;
	struct x86_bzimage bz;
	unsigned int i, j, ok = 0;

	build_bzimage(good);
	for (i = 0; i < 20000; i++) {
		unsigned int flips = 1 + next_rand(&seed) % 3;
		size_t len = next_rand(&seed) % 8 ? BZ_LEN
						  : next_rand(&seed) % BZ_LEN;
		int err;

		memcpy(f, good, sizeof(f));
		for (j = 0; j < flips; j++)
			f[0x1f1 + next_rand(&seed) % (0x26c - 0x1f1)] =
				(uint8_t)next_rand(&seed);
		err = parse_bz_exact(f, len, &bz);
		cr_assert(err == 0 || err == -ENOEXEC, "%d", err);
		if (!err) {
			cr_assert_eq(bz.setup_size + bz.kernel_size, len);
			cr_assert_geq(bz.init_size, bz.kernel_size);
			ok++;
		}
	}
	cr_assert_gt(ok, 0);
}

/* --- zero page ------------------------------------------------------------- */

static struct x86_e820_entry e820[3];
static unsigned int nr_e820;

static void e820_setup(void)
{
	nr_e820 = x86_boot__e820(SZ_1G, e820, ARRAY_SIZE(e820));
}

static bool all_zero(const uint8_t *p, size_t from, size_t to)
{
	for (; from < to; from++)
		if (p[from])
			return false;
	return true;
}

Test(x86_zero_page, fills_the_header_for_an_elf_vmlinux, .init = e820_setup)
{
	static uint8_t zp[X86_ZERO_PAGE_SIZE];

	memset(zp, 0xa5, sizeof(zp));
	cr_assert_eq(x86_boot__zero_page(zp, NULL, 0, X86_CMDLINE, 123,
					 0x3f000000, 0x654321, e820, nr_e820),
		     0);
	/* Offsets from Documentation/x86/boot.rst and zero-page.rst. */
	cr_assert_eq(rd16(zp, 0x1fe), 0xaa55, "boot_flag");
	cr_assert_eq(memcmp(zp + 0x202, "HdrS", 4), 0, "header");
	cr_assert_eq(rd16(zp, 0x206), 0x020c, "version");
	cr_assert_eq(zp[0x210], 0xff, "type_of_loader");
	cr_assert_eq(zp[0x211], 0x01, "loadflags: LOADED_HIGH only");
	cr_assert_eq(rd32(zp, 0x218), 0x3f000000, "ramdisk_image");
	cr_assert_eq(rd32(zp, 0x21c), 0x654321, "ramdisk_size");
	cr_assert_eq(rd16(zp, 0x224), 0, "heap_end_ptr: no heap");
	cr_assert_eq(rd32(zp, 0x228), X86_CMDLINE, "cmd_line_ptr");
	cr_assert_eq(rd32(zp, 0x230), 0x1000000, "kernel_alignment");
	cr_assert_eq(rd32(zp, 0x238), 123, "cmdline_size");
	cr_assert_eq(rd32(zp, 0xc0), 0, "ext_ramdisk_image");
	cr_assert_eq(rd32(zp, 0xc8), 0, "ext_cmd_line_ptr");
	cr_assert_eq(zp[0x1e8], nr_e820, "e820_entries");
	cr_assert_eq(memcmp(zp + 0x2d0, e820, nr_e820 * 20), 0, "e820_table");
	cr_assert_eq(zp[0x1ef], 0, "sentinel: nothing stale in boot_params");
	cr_assert(all_zero(zp, 0, 0xc0));
	cr_assert(all_zero(zp, 0x2d0 + nr_e820 * 20, X86_ZERO_PAGE_SIZE));
}

Test(x86_zero_page, copies_the_bzimage_header, .init = e820_setup)
{
	static uint8_t f[BZ_LEN], zp[X86_ZERO_PAGE_SIZE];

	build_bzimage(f);
	memset(zp, 0xa5, sizeof(zp));
	cr_assert_eq(x86_boot__zero_page(zp, f, BZ_LEN, X86_CMDLINE, 2047, 0, 0,
					 e820, nr_e820),
		     0);
	cr_assert_eq(zp[0x1f1], BZ_SETUP_SECTS, "setup_sects");
	cr_assert_eq(rd16(zp, 0x1fe), 0xaa55);
	cr_assert_eq(rd16(zp, 0x206), 0x020f, "the kernel's version stays");
	cr_assert_eq(rd32(zp, 0x214), 0x100000, "code32_start");
	cr_assert_eq(rd32(zp, 0x230), 0x200000, "kernel_alignment");
	cr_assert_eq(rd64(zp, 0x258), 0x1000000, "pref_address");
	cr_assert_eq(rd32(zp, 0x260), 0x2000000, "init_size");
	cr_assert_eq(rd32(zp, 0x268), 0x1234, "kernel_info_offset");
	cr_assert(all_zero(zp, BZ_HDR_END, 0x2d0), "setup code not copied");
	cr_assert_eq(zp[0x210], 0xff);
	cr_assert_eq(zp[0x211], 0x81, "LOADED_HIGH | CAN_USE_HEAP");
	cr_assert_eq(rd16(zp, 0x224), 0xfe00, "heap_end_ptr");
	cr_assert_eq(rd32(zp, 0x228), X86_CMDLINE);
	cr_assert_eq(rd32(zp, 0x218), 0, "no initrd");
	cr_assert_eq(rd32(zp, 0x21c), 0);
	cr_assert_eq(zp[0x1e8], nr_e820);
	cr_assert(all_zero(zp, 0, 0x1e8));
}

Test(x86_zero_page, copies_a_long_header_only_up_to_0x290, .init = e820_setup)
{
	static uint8_t f[BZ_LEN], zp[X86_ZERO_PAGE_SIZE];

	build_bzimage(f);
	f[0x201] = 0xff; /* the header would end at 0x301 */
	cr_assert_eq(x86_boot__zero_page(zp, f, BZ_LEN, X86_CMDLINE, 10, 0, 0,
					 e820, nr_e820),
		     0);
	cr_assert_eq(zp[0x28f], 0x90, "bytes up to 0x290 are the header's");
	cr_assert(all_zero(zp, 0x290, 0x2d0), "edd_mbr_sig_buffer stays 0");
	cr_assert_eq(memcmp(zp + 0x2d0, e820, nr_e820 * 20), 0);
}

Test(x86_zero_page, splits_addresses_above_4g, .init = e820_setup)
{
	static uint8_t zp[X86_ZERO_PAGE_SIZE];

	cr_assert_eq(x86_boot__zero_page(zp, NULL, 0, 0x123456789ULL, 5,
					 0x2abcd0000ULL, 0x100001000ULL, e820,
					 nr_e820),
		     0);
	cr_assert_eq(rd32(zp, 0x228), 0x23456789);
	cr_assert_eq(rd32(zp, 0xc8), 0x1);
	cr_assert_eq(rd32(zp, 0x218), 0xabcd0000);
	cr_assert_eq(rd32(zp, 0xc0), 0x2);
	cr_assert_eq(rd32(zp, 0x21c), 0x1000);
	cr_assert_eq(rd32(zp, 0xc4), 0x1);
}

Test(x86_zero_page, refuses_bad_arguments, .init = e820_setup)
{
	static uint8_t f[BZ_LEN], zp[X86_ZERO_PAGE_SIZE];
	static struct x86_e820_entry many[X86_ZERO_PAGE_E820_MAX + 1];

	cr_assert_eq(
		x86_boot__zero_page(zp, NULL, 0, X86_CMDLINE, 1, 0, 0, e820, 0),
		-EINVAL);
	cr_assert_eq(x86_boot__zero_page(zp, NULL, 0, X86_CMDLINE, 1, 0, 0,
					 many, X86_ZERO_PAGE_E820_MAX + 1),
		     -EINVAL);
	cr_assert_eq(x86_boot__zero_page(zp, NULL, 0, X86_CMDLINE, 1, 0, 0,
					 many, X86_ZERO_PAGE_E820_MAX),
		     0);
	cr_assert_eq(zp[0x1e8], X86_ZERO_PAGE_E820_MAX);
	cr_assert_eq(x86_boot__zero_page(zp, NULL, 0, X86_CMDLINE, 1,
					 UINT64_MAX - 10, 11, e820, nr_e820),
		     -EINVAL);
	build_bzimage(f);
	cr_assert_eq(x86_boot__zero_page(zp, f, BZ_LEN, X86_CMDLINE, 2048, 0, 0,
					 e820, nr_e820),
		     -E2BIG, "longer than the kernel's cmdline_size");
	wr16(f, 0x1fe, 0);
	cr_assert_eq(x86_boot__zero_page(zp, f, BZ_LEN, X86_CMDLINE, 1, 0, 0,
					 e820, nr_e820),
		     -ENOEXEC);
}

#ifdef HAVE_UAPI_BOOTPARAM
_Static_assert(sizeof(struct boot_params) == X86_ZERO_PAGE_SIZE, "size");
_Static_assert(sizeof(struct boot_e820_entry) == sizeof(struct x86_e820_entry),
	       "e820 entry");
_Static_assert(E820_MAX_ENTRIES_ZEROPAGE == X86_ZERO_PAGE_E820_MAX, "e820 max");

Test(x86_zero_page, reads_back_through_the_kernels_struct, .init = e820_setup)
{
	static uint8_t f[BZ_LEN];
	static struct boot_params bp;

	build_bzimage(f);
	cr_assert_eq(x86_boot__zero_page(&bp, f, BZ_LEN, 0x120000000ULL, 77,
					 0x3f000000, 0x1234, e820, nr_e820),
		     0);
	cr_assert_eq(bp.hdr.setup_sects, BZ_SETUP_SECTS);
	cr_assert_eq(bp.hdr.boot_flag, 0xaa55);
	cr_assert_eq(bp.hdr.header, 0x53726448);
	cr_assert_eq(bp.hdr.type_of_loader, 0xff);
	cr_assert_eq(bp.hdr.loadflags, LOADED_HIGH | CAN_USE_HEAP);
	cr_assert_eq(bp.hdr.heap_end_ptr, 0xfe00);
	cr_assert_eq(bp.hdr.cmd_line_ptr, 0x20000000);
	cr_assert_eq(bp.ext_cmd_line_ptr, 1);
	cr_assert_eq(bp.hdr.cmdline_size, 77);
	cr_assert_eq(bp.hdr.ramdisk_image, 0x3f000000);
	cr_assert_eq(bp.hdr.ramdisk_size, 0x1234);
	cr_assert_eq(bp.hdr.xloadflags, 0x7f);
	cr_assert_eq(bp.hdr.init_size, 0x2000000);
	cr_assert_eq(bp.hdr.kernel_info_offset, 0x1234);
	cr_assert_eq(bp.e820_entries, 3);
	cr_assert_eq(bp.e820_table[2].addr, X86_HIGH_RAM);
	cr_assert_eq(bp.e820_table[2].size, SZ_1G - X86_HIGH_RAM);
	cr_assert_eq(bp.e820_table[1].type, X86_E820_RESERVED);
	cr_assert_eq(bp.sentinel, 0);
}
#endif

/* --- PVH ------------------------------------------------------------------- */

#define INFO_GPA X86_BOOT_INFO
#define MEMMAP_GPA X86_BOOT_MEMMAP

Test(x86_pvh, writes_start_info_module_and_memmap, .init = e820_setup)
{
	uint8_t info[X86_PVH_INFO_SIZE + 8], memmap[3 * 24 + 8];

	memset(info, 0xa5, sizeof(info));
	memset(memmap, 0xa5, sizeof(memmap));
	cr_assert_eq(x86_boot__pvh_info(info, X86_PVH_INFO_SIZE, INFO_GPA,
					memmap, 3 * 24, MEMMAP_GPA, X86_CMDLINE,
					0x3f000000, 0x54321, e820, nr_e820),
		     0);
	/* Offsets from xen/interface/hvm/start_info.h. */
	cr_assert_eq(rd32(info, 0), 0x336ec578, "magic");
	cr_assert_eq(rd32(info, 4), 1, "version");
	cr_assert_eq(rd32(info, 8), 0, "flags");
	cr_assert_eq(rd32(info, 12), 1, "nr_modules");
	cr_assert_eq(rd64(info, 16), INFO_GPA + 56, "modlist_paddr");
	cr_assert_eq(rd64(info, 24), X86_CMDLINE, "cmdline_paddr");
	cr_assert_eq(rd64(info, 32), 0, "rsdp_paddr");
	cr_assert_eq(rd64(info, 40), MEMMAP_GPA, "memmap_paddr");
	cr_assert_eq(rd32(info, 48), 3, "memmap_entries");
	cr_assert_eq(rd32(info, 52), 0, "reserved");
	cr_assert_eq(rd64(info, 56), 0x3f000000, "module paddr");
	cr_assert_eq(rd64(info, 64), 0x54321, "module size");
	cr_assert_eq(rd64(info, 72), 0, "module cmdline_paddr");
	cr_assert_eq(rd64(info, 80), 0, "module reserved");
	cr_assert_eq(info[88], 0xa5, "nothing past the module");
	cr_assert_eq(rd64(memmap, 0), 0);
	cr_assert_eq(rd64(memmap, 8), X86_EBDA);
	cr_assert_eq(rd32(memmap, 16), X86_E820_RAM);
	cr_assert_eq(rd32(memmap, 20), 0);
	cr_assert_eq(rd64(memmap, 24), X86_EBDA);
	cr_assert_eq(rd32(memmap, 24 + 16), X86_E820_RESERVED);
	cr_assert_eq(rd64(memmap, 48), X86_HIGH_RAM);
	cr_assert_eq(rd64(memmap, 48 + 8), SZ_1G - X86_HIGH_RAM);
	cr_assert_eq(rd32(memmap, 48 + 20), 0);
	cr_assert_eq(memmap[72], 0xa5);
	/* The info and its memory map fit the pages the memory map gives them. */
	cr_assert_leq(INFO_GPA + X86_PVH_INFO_SIZE, MEMMAP_GPA);
	cr_assert_leq(MEMMAP_GPA + X86_ZERO_PAGE_E820_MAX * 24, X86_PML4);
}

Test(x86_pvh, has_no_module_without_an_initrd, .init = e820_setup)
{
	uint8_t info[X86_PVH_START_INFO_SIZE + 1], memmap[3 * 24];

	info[56] = 0xa5;
	cr_assert_eq(x86_boot__pvh_info(info, 56, INFO_GPA, memmap,
					sizeof(memmap), MEMMAP_GPA, X86_CMDLINE,
					0, 0, e820, nr_e820),
		     0);
	cr_assert_eq(rd32(info, 12), 0, "nr_modules");
	cr_assert_eq(rd64(info, 16), 0, "modlist_paddr");
	cr_assert_eq(info[56], 0xa5);
}

Test(x86_pvh, refuses_small_buffers_without_writing, .init = e820_setup)
{
	uint8_t info[X86_PVH_INFO_SIZE], memmap[3 * 24];

	memset(info, 0xa5, sizeof(info));
	memset(memmap, 0xa5, sizeof(memmap));
	cr_assert_eq(x86_boot__pvh_info(info, 55, INFO_GPA, memmap, 72,
					MEMMAP_GPA, X86_CMDLINE, 0, 0, e820,
					nr_e820),
		     -ENOSPC);
	cr_assert_eq(x86_boot__pvh_info(info, 87, INFO_GPA, memmap, 72,
					MEMMAP_GPA, X86_CMDLINE, 0x3f000000, 1,
					e820, nr_e820),
		     -ENOSPC);
	cr_assert_eq(x86_boot__pvh_info(info, 88, INFO_GPA, memmap, 71,
					MEMMAP_GPA, X86_CMDLINE, 0, 0, e820,
					nr_e820),
		     -ENOSPC);
	cr_assert_eq(x86_boot__pvh_info(info, 88, INFO_GPA, memmap, 72,
					MEMMAP_GPA, X86_CMDLINE, 0, 0, e820, 0),
		     -EINVAL);
	cr_assert_eq(info[0], 0xa5);
	cr_assert_eq(memmap[0], 0xa5);
}

/* --- page tables and GDT --------------------------------------------------- */

Test(x86_paging, identity_maps_the_first_gigabyte)
{
	static uint8_t pml4[4096], pdpt[4096], pd[4096];
	unsigned int i;

	memset(pml4, 0xff, sizeof(pml4));
	memset(pdpt, 0xff, sizeof(pdpt));
	memset(pd, 0xff, sizeof(pd));
	x86_boot__page_tables(pml4, pdpt, pd);
	cr_assert_eq(rd64(pml4, 0), 0xa003, "PML4[0] -> PDPT at X86_PDPT");
	cr_assert_eq(rd64(pml4, 0), X86_PDPT | 3);
	cr_assert_eq(rd64(pdpt, 0), X86_PD | 3);
	cr_assert(all_zero(pml4, 8, 4096));
	cr_assert(all_zero(pdpt, 8, 4096));
	for (i = 0; i < 512; i++)
		cr_assert_eq(rd64(pd, i * 8), (uint64_t)i * SZ_2M | 0x83,
			     "PD[%u]", i);
	cr_assert_eq(rd64(pd, 511 * 8) & ~0xfffULL, SZ_1G - SZ_2M);
}

Test(x86_gdt, writes_the_flat_descriptors_per_mode)
{
	uint64_t gdt[6];
	unsigned int i;

	memset(gdt, 0xff, sizeof(gdt));
	x86_boot__gdt(gdt, 6, X86_BOOT_LINUX64);
	cr_assert_eq(le64toh(gdt[0]), 0);
	cr_assert_eq(le64toh(gdt[1]), 0x00af9b000000ffffULL);
	cr_assert_eq(le64toh(gdt[2]), 0x00cf93000000ffffULL);
	cr_assert_eq(le64toh(gdt[3]), 0x008f8b000000ffffULL);
	cr_assert_eq(gdt[4], 0);
	cr_assert_eq(gdt[5], 0);
	x86_boot__gdt(gdt, 4, X86_BOOT_PVH32);
	cr_assert_eq(le64toh(gdt[1]), 0x00cf9b000000ffffULL);
	cr_assert_eq(le64toh(gdt[2]), 0x00cf93000000ffffULL);
	for (i = 0; i < 6; i++)
		gdt[i] = ~0ULL;
	x86_boot__gdt(gdt, 2, X86_BOOT_LINUX64);
	cr_assert_eq(le64toh(gdt[1]), X86_GDT_CODE64);
	cr_assert_eq(gdt[2], ~0ULL, "n entries, no more");
	cr_assert_eq(X86_GDT_CODE_SEL / 8, 1);
	cr_assert_eq(X86_GDT_DATA_SEL / 8, 2);
	cr_assert_eq(X86_GDT_TSS_SEL / 8, 3);
}

Test(x86_gdt, decodes_descriptors_into_segments)
{
	struct x86_seg s;

	x86_boot__seg(X86_GDT_CODE64, X86_GDT_CODE_SEL, &s);
	cr_assert_eq(s.base, 0);
	cr_assert_eq(s.limit, 0xffffffff);
	cr_assert_eq(s.selector, 0x08);
	cr_assert_eq(s.type, 0xb, "execute/read, accessed");
	cr_assert_eq(s.present, 1);
	cr_assert_eq(s.dpl, 0);
	cr_assert_eq(s.db, 0);
	cr_assert_eq(s.s, 1);
	cr_assert_eq(s.l, 1);
	cr_assert_eq(s.g, 1);
	cr_assert_eq(s.avl, 0);
	cr_assert_eq(s.unusable, 0);

	x86_boot__seg(X86_GDT_CODE32, X86_GDT_CODE_SEL, &s);
	cr_assert_eq(s.l, 0);
	cr_assert_eq(s.db, 1);
	cr_assert_eq(s.type, 0xb);

	x86_boot__seg(X86_GDT_DATA, X86_GDT_DATA_SEL, &s);
	cr_assert_eq(s.selector, 0x10);
	cr_assert_eq(s.type, 0x3, "read/write, accessed");
	cr_assert_eq(s.db, 1);
	cr_assert_eq(s.l, 0);
	cr_assert_eq(s.s, 1);
	cr_assert_eq(s.limit, 0xffffffff);

	x86_boot__seg(X86_GDT_TSS, X86_GDT_TSS_SEL, &s);
	cr_assert_eq(s.type, 0xb, "busy 32-bit TSS");
	cr_assert_eq(s.s, 0, "a system segment");
	cr_assert_eq(s.present, 1);

	x86_boot__seg(0, 0, &s);
	cr_assert_eq(s.present, 0);
	cr_assert_eq(s.unusable, 1);
}

Test(x86_gdt, decodes_base_limit_and_flags_bits)
{
	/* base 0x12345678, limit 0xabcde byte-granular, DPL 3, AVL, present. */
	uint64_t desc = 0x12ULL << 56 | 0x1aULL << 48 | 0xf2ULL << 40 |
			0x345678ULL << 16 | 0xbcdeULL;
	struct x86_seg s;

	x86_boot__seg(desc, 0x2b, &s);
	cr_assert_eq(s.base, 0x12345678);
	cr_assert_eq(s.limit, 0xabcde);
	cr_assert_eq(s.selector, 0x2b);
	cr_assert_eq(s.type, 0x2);
	cr_assert_eq(s.s, 1);
	cr_assert_eq(s.dpl, 3);
	cr_assert_eq(s.present, 1);
	cr_assert_eq(s.avl, 1);
	cr_assert_eq(s.l, 0);
	cr_assert_eq(s.db, 0);
	cr_assert_eq(s.g, 0);
}
