// SPDX-License-Identifier: Apache-2.0
// Reads stdin to its end and prints its POSIX cksum (CRC and length), like cksum(1).
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

/* POSIX cksum: CRC-32 with polynomial 0x04c11db7, MSB first, length appended. */
static uint32_t crc_byte(uint32_t crc, uint8_t b)
{
	crc ^= (uint32_t)b << 24;
	for (int i = 0; i < 8; i++)
		crc = crc & 0x80000000U ? (crc << 1) ^ 0x04c11db7U : crc << 1;
	return crc;
}

int main(void)
{
	static uint8_t buf[65536];
	uint64_t len = 0, n;
	uint32_t crc = 0;
	ssize_t r;

	while ((r = read(STDIN_FILENO, buf, sizeof(buf))) > 0) {
		for (ssize_t i = 0; i < r; i++)
			crc = crc_byte(crc, buf[i]);
		len += (uint64_t)r;
	}
	if (r < 0) {
		perror("read");
		return 1;
	}
	for (n = len; n; n >>= 8)
		crc = crc_byte(crc, (uint8_t)n);
	printf("%u %llu\n", ~crc, (unsigned long long)len);
	return 0;
}
