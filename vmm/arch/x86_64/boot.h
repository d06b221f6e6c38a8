/* SPDX-License-Identifier: Apache-2.0 */
/* x86_64 boot structures: e820, MP table, ELF/bzImage parsing, zero page, PVH, page tables, GDT. */
#ifndef SANDBOX_X86_64_BOOT_H
#define SANDBOX_X86_64_BOOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../../util.h"
#include "arch.h"

/*
 * Pure functions: no KVM, no I/O, no allocation. They write into buffers the
 * caller provides (guest memory, reached through mem__gpa_to_hva()), in the
 * little-endian packed layouts of Linux's arch/x86/include/uapi/asm/bootparam.h,
 * Documentation/x86/boot.rst, Xen's hvm/start_info.h and the Intel MP spec 1.4.
 * Buffers need no particular alignment unless a comment says so.
 */

/* e820 / PVH memory map types (ACPI address range types). */
#define X86_E820_RAM 1
#define X86_E820_RESERVED 2

/* One e820 entry as boot_params.e820_table holds it: 20 bytes, packed. */
struct x86_e820_entry {
	uint64_t addr;
	uint64_t size;
	uint32_t type;
} __attribute__((packed));
_Static_assert(sizeof(struct x86_e820_entry) == 20, "boot_e820_entry is 20");

/*
 * Writes the guest's memory map for RAM [0, @ram_size) into @e: RAM
 * [0, X86_EBDA) (clipped to @ram_size), reserved [X86_EBDA, X86_EBDA_END)
 * (always: the MP table lives there and firmware-era guests expect the hole),
 * and RAM [X86_HIGH_RAM, @ram_size) when @ram_size is above X86_HIGH_RAM.
 * Returns the number of entries written: at most @max (3 suffice), the first
 * @max of the map when @max is smaller.
 */
unsigned int x86_boot__e820(uint64_t ram_size, struct x86_e820_entry *e,
			    unsigned int max);

/* Most vCPUs an MP table can describe: APIC ids 0..253, the IOAPIC takes 254. */
#define X86_MPTABLE_MAX_CPUS 254
/* Bytes x86_boot__mptable() writes for @n vCPUs. */
#define X86_MPTABLE_SIZE(n) \
	(16 + 44 + 20 * (size_t)(n) + 8 + 8 + 8 * X86_IOAPIC_PINS + 2 * 8)

/*
 * Writes an Intel MP spec 1.4 table into @buf (@size bytes), which the guest
 * sees at physical address @gpa (16-byte aligned; Linux scans the last KiB of
 * base memory, X86_EBDA, for it): the floating pointer structure, then right
 * after it the configuration table with @nr_cpus processor entries (APIC id
 * i, cpu 0 the BSP), one ISA bus, one IOAPIC (id @nr_cpus, version 0x11, at
 * X86_IOAPIC_BASE), ISA IRQ n -> IOAPIC pin n for every pin (conforming
 * polarity and trigger), and ExtINT on LINT0 and NMI on LINT1 of every local
 * APIC. Both structures checksum to 0. Nothing past X86_MPTABLE_SIZE(@nr_cpus)
 * is touched. Returns the bytes written; -EINVAL for @nr_cpus 0 or above
 * X86_MPTABLE_MAX_CPUS, a misaligned @gpa or a table that would cross 4 GiB;
 * -ENOSPC when @size is below X86_MPTABLE_SIZE(@nr_cpus).
 */
int x86_boot__mptable(void *buf, size_t size, uint32_t gpa,
		      unsigned int nr_cpus) __must_check;

#define X86_ELF_MAX_SEGS 8
#define X86_XEN_ELFNOTE_PHYS32_ENTRY 18

struct x86_elf_seg {
	uint64_t offset; /* in the file */
	uint64_t paddr; /* guest physical load address */
	uint64_t filesz; /* bytes copied from the file */
	uint64_t memsz; /* bytes occupied; past filesz they are zero */
};

struct x86_elf {
	struct x86_elf_seg segs[X86_ELF_MAX_SEGS]; /* PT_LOAD, in file order */
	unsigned int nr_segs;
	uint64_t entry; /* e_entry: a virtual address for vmlinux */
	uint64_t pvh_entry; /* the 32-bit PVH entry point; 0 when absent */
	uint64_t lo, hi; /* lowest paddr, end of the highest paddr + memsz */
};

/*
 * Parses an ELF64 x86_64 executable (a vmlinux) of @len bytes at @file.
 * Checks the ELF identification (64-bit, little-endian), EM_X86_64, ET_EXEC,
 * the program header table within the file, and each PT_LOAD segment
 * (filesz <= memsz, file bytes within the file, no address wrap); PT_LOAD
 * segments with memsz 0 are skipped. The PVH entry point comes from the
 * PT_NOTE note named "Xen" of type XEN_ELFNOTE_PHYS32_ENTRY, whose
 * descriptor is a 4- or 8-byte little-endian value below 4 GiB. Safe on any
 * input: never reads outside [@file, @file + @len). Returns 0 with *@out
 * filled, or -ENOEXEC with *@why set to a static sentence saying what is
 * wrong (no PT_LOAD, more than X86_ELF_MAX_SEGS of them, ...).
 */
int x86_boot__parse_elf(const void *file, size_t len, struct x86_elf *out,
			const char **why) __must_check;

/* Oldest boot protocol accepted: 2.12 has xloadflags and XLF_KERNEL_64. */
#define X86_BZIMAGE_MIN_VERSION 0x020c
/* The 64-bit entry point is this far into the protected-mode kernel. */
#define X86_BZIMAGE_ENTRY64 0x200

struct x86_bzimage {
	uint64_t setup_size; /* (setup_sects + 1) * 512: the kernel's file offset */
	uint64_t kernel_size; /* file bytes after the setup: load them */
	uint64_t init_size; /* bytes the kernel needs from its load address */
	uint64_t pref_address; /* preferred load address */
	uint32_t kernel_alignment; /* required alignment if relocatable */
	uint32_t cmdline_size; /* longest command line, NUL excluded */
	uint32_t initrd_addr_max; /* highest address the initrd may occupy */
	uint16_t version; /* boot protocol version, e.g. 0x020f */
	uint16_t xloadflags;
	bool relocatable;
};

/*
 * Parses a bzImage of @len bytes at @file (Documentation/x86/boot.rst): boot
 * sector signature 0xAA55 at 0x1fe, "HdrS" at 0x202, protocol version at
 * least X86_BZIMAGE_MIN_VERSION, XLF_KERNEL_64 in xloadflags, the setup
 * header (up to 0x202 + the byte at 0x201) and the setup sectors (0 meaning
 * 4) within the file, a protected-mode kernel past its 64-bit entry, an
 * init_size that covers it and, for a relocatable kernel, a power-of-two
 * kernel_alignment. Safe on any input. Returns 0 with *@out filled, or
 * -ENOEXEC with *@why set to a static sentence saying what is wrong.
 */
int x86_boot__parse_bzimage(const void *file, size_t len,
			    struct x86_bzimage *out,
			    const char **why) __must_check;

/* struct boot_params, the "zero page". */
#define X86_ZERO_PAGE_SIZE 4096
#define X86_ZERO_PAGE_E820_MAX 128 /* E820_MAX_ENTRIES_ZEROPAGE */

/*
 * Writes the zero page for the 64-bit boot protocol into @zp
 * (X86_ZERO_PAGE_SIZE bytes). It is zeroed, then the setup header comes from
 * the bzImage (@bzimage, @len bytes: 0x1f1 up to 0x202 + the byte at 0x201,
 * at most up to 0x290 where the rest of boot_params resumes) or, for an ELF
 * vmlinux (@bzimage NULL), is made up: boot_flag 0xAA55, "HdrS", version
 * 2.12, kernel_alignment 16 MiB. Then: type_of_loader 0xff, LOADED_HIGH (and
 * for a bzImage CAN_USE_HEAP with heap_end_ptr 0xfe00), the command line at
 * @cmdline_gpa of @cmdline_size bytes (NUL excluded), the initrd at
 * @initrd_gpa of @initrd_size bytes (0: none; the high halves of both go to
 * ext_cmd_line_ptr / ext_ramdisk_*, which 64-bit kernels read), and the
 * @nr_e820 entries of @e as the e820 table.
 * Returns 0; -EINVAL for no e820 entries or more than X86_ZERO_PAGE_E820_MAX,
 * or an initrd whose end wraps; -E2BIG when a bzImage states a cmdline_size
 * below @cmdline_size (the kernel would cut the command line short);
 * -ENOEXEC when @bzimage does not pass x86_boot__parse_bzimage().
 * On error @zp may be partly written.
 */
int x86_boot__zero_page(void *zp, const void *bzimage, size_t len,
			uint64_t cmdline_gpa, uint32_t cmdline_size,
			uint64_t initrd_gpa, uint64_t initrd_size,
			const struct x86_e820_entry *e,
			unsigned int nr_e820) __must_check;

#define X86_PVH_MAGIC 0x336ec578U /* XEN_HVM_START_MAGIC_VALUE */
#define X86_PVH_START_INFO_SIZE 56 /* struct hvm_start_info, version 1 */
#define X86_PVH_MODLIST_ENTRY_SIZE 32 /* struct hvm_modlist_entry */
/* Bytes @info needs: the start info, then one module entry for an initrd. */
#define X86_PVH_INFO_SIZE (X86_PVH_START_INFO_SIZE + X86_PVH_MODLIST_ENTRY_SIZE)
#define X86_PVH_MEMMAP_ENTRY_SIZE 24 /* struct hvm_memmap_table_entry */

/*
 * Writes the PVH start info (struct hvm_start_info version 1) into @info
 * (@info_size bytes, seen by the guest at @info_gpa, where %ebx points) and
 * its memory map, the @nr_e820 entries of @e with the same types, into
 * @memmap (@memmap_size bytes, seen at @memmap_gpa). With an initrd
 * (@initrd_size != 0) one struct hvm_modlist_entry follows the start info
 * (modlist_paddr = @info_gpa + X86_PVH_START_INFO_SIZE, nr_modules 1).
 * cmdline_paddr is @cmdline_gpa; rsdp_paddr is 0 (no ACPI: the MP table).
 * Returns 0; -EINVAL for no e820 entries or a wrapping initrd; -ENOSPC when
 * @info_size is below X86_PVH_START_INFO_SIZE (plus
 * X86_PVH_MODLIST_ENTRY_SIZE with an initrd) or @memmap_size below
 * @nr_e820 * X86_PVH_MEMMAP_ENTRY_SIZE. Nothing is written on error.
 */
int x86_boot__pvh_info(void *info, size_t info_size, uint64_t info_gpa,
		       void *memmap, size_t memmap_size, uint64_t memmap_gpa,
		       uint64_t cmdline_gpa, uint64_t initrd_gpa,
		       uint64_t initrd_size, const struct x86_e820_entry *e,
		       unsigned int nr_e820) __must_check;

/* Page table entry bits. */
#define X86_PTE_PRESENT (1ULL << 0)
#define X86_PTE_RW (1ULL << 1)
#define X86_PTE_PS (1ULL << 7) /* in a PD entry: a 2 MiB page */
#define X86_IDENTITY_MAPPED SZ_1G /* what x86_boot__page_tables() maps */

/*
 * Writes identity page tables for the first X86_IDENTITY_MAPPED bytes into
 * the three 4096-byte pages @pml4, @pdpt, @pd, which the guest sees at
 * X86_PML4, X86_PDPT and X86_PD: PML4[0] -> PDPT, PDPT[0] -> PD, and 512 PD
 * entries of 2 MiB pages (present, writable). All other entries are zero.
 */
void x86_boot__page_tables(void *pml4, void *pdpt, void *pd);

/* The GDT at X86_GDT: what the boot vCPU's segment registers are loaded from. */
#define X86_GDT_ENTRIES 4
#define X86_GDT_CODE_SEL 0x08 /* index 1 */
#define X86_GDT_DATA_SEL 0x10 /* index 2 */
#define X86_GDT_TSS_SEL 0x18 /* index 3 */
#define X86_GDT_CODE64 0x00af9b000000ffffULL /* flat, L=1, execute/read */
#define X86_GDT_CODE32 0x00cf9b000000ffffULL /* flat, D=1, execute/read */
#define X86_GDT_DATA 0x00cf93000000ffffULL /* flat, read/write */
#define X86_GDT_TSS 0x008f8b000000ffffULL /* busy 32-bit TSS */

enum x86_boot_mode {
	X86_BOOT_PVH32, /* PVH entry: 32-bit protected mode, paging off */
	X86_BOOT_LINUX64, /* 64-bit boot protocol: long mode */
};

/*
 * Writes @n descriptors into @gdt (guest memory, little-endian): null, code
 * (X86_GDT_CODE32 for X86_BOOT_PVH32, X86_GDT_CODE64 for X86_BOOT_LINUX64),
 * data, TSS; entries past X86_GDT_ENTRIES are zero and an @n below it keeps
 * only the first @n.
 */
void x86_boot__gdt(uint64_t *gdt, unsigned int n, enum x86_boot_mode mode);

/* A segment register as struct kvm_segment holds it. */
struct x86_seg {
	uint64_t base;
	uint32_t limit; /* in bytes: scaled by 4 KiB when g is set */
	uint16_t selector;
	uint8_t type, present, dpl, db, s, l, g, avl;
	uint8_t unusable; /* !present: what KVM wants for a null segment */
};

/* Decodes the GDT descriptor @desc loaded through @selector into *@out. */
void x86_boot__seg(uint64_t desc, uint16_t selector, struct x86_seg *out);

#endif
