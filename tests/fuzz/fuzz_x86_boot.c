// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: the x86 kernel parsers (ELF vmlinux, bzImage) and the x86 snapshot records.
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../vmm/arch/x86_64/boot.h"
#include "../../vmm/arch/x86_64/cpu_state.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct x86_vcpu_state vcpu;
	struct x86_vm_state vm;
	struct x86_bzimage bz;
	struct x86_elf elf;
	struct state_reader r;
	const char *why;
	unsigned int i;
	uint8_t *copy;

	/* An exact-size copy: ASan then catches a read one byte past the input. */
	copy = malloc(size ? size : 1);
	if (!copy)
		return 0;
	memcpy(copy, data, size);
	if (x86_boot__parse_elf(copy, size, &elf, &why) == 0) {
		for (i = 0; i < elf.nr_segs; i++)
			if (elf.segs[i].offset + elf.segs[i].filesz > size ||
			    elf.segs[i].filesz > elf.segs[i].memsz)
				abort();
	}
	if (x86_boot__parse_bzimage(copy, size, &bz, &why) == 0 &&
	    bz.setup_size + bz.kernel_size > size)
		abort();
	state__reader(&r, copy, size);
	if (x86_state__get_vcpu(&r, &vcpu) == 0 &&
	    (vcpu.nr_cpuid > X86_MAX_CPUID || vcpu.nr_msrs > X86_MAX_MSRS))
		abort();
	x86_state__free_vcpu(&vcpu);
	state__reader(&r, copy, size);
	(void)x86_state__get_vm(&r, &vm);
	free(copy);
	return 0;
}
