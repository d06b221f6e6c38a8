// SPDX-License-Identifier: Apache-2.0
// Command-line parsing: defaults, every flag form, and every rejection.
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "../../launcher/cli.h"

#define ARGV(...) ((char *const[]){ "sandbox", __VA_ARGS__ })
#define ARGC(...) \
	((int)(sizeof((char *[]){ "sandbox", __VA_ARGS__ }) / sizeof(char *)))
#define PARSE(cli, ...)                                              \
	cli__parse(ARGC(__VA_ARGS__), ARGV(__VA_ARGS__), (cli), err, \
		   sizeof(err))

static char err[256];

Test(cli, boot_has_defaults)
{
	struct cli c;

	cr_assert_eq(PARSE(&c, "boot"), 0);
	cr_assert_eq(c.cmd, CLI_BOOT);
	cr_assert_null(c.boot.kernel);
	cr_assert_null(c.boot.initrd);
	cr_assert_null(c.boot.cmdline);
	cr_assert_not(c.boot.no_initrd);
	cr_assert_eq(c.boot.mem_mib, CLI_DEFAULT_MEM_MIB);
	cr_assert_eq(c.boot.vcpus, 1);
	cr_assert_eq(c.boot.timeout_s, 0);
}

Test(cli, boot_takes_every_flag_in_both_forms)
{
	struct cli c;

	cr_assert_eq(PARSE(&c, "boot", "--kernel", "/k", "--initrd=/i",
			   "--cmdline", "console=ttyAMA0 quiet", "--mem=256",
			   "--vcpus", "2", "--timeout", "30"),
		     0, "%s", err);
	cr_assert_str_eq(c.boot.kernel, "/k");
	cr_assert_str_eq(c.boot.initrd, "/i");
	cr_assert_str_eq(c.boot.cmdline, "console=ttyAMA0 quiet");
	cr_assert_eq(c.boot.mem_mib, 256);
	cr_assert_eq(c.boot.vcpus, 2);
	cr_assert_eq(c.boot.timeout_s, 30);
}

Test(cli, empty_cmdline_is_allowed)
{
	struct cli c;

	cr_assert_eq(PARSE(&c, "boot", "--cmdline="), 0);
	cr_assert_str_eq(c.boot.cmdline, "");
}

Test(cli, rejects_missing_values)
{
	struct cli c;

	cr_assert_eq(PARSE(&c, "boot", "--kernel"), -EINVAL);
	cr_assert(strstr(err, "--kernel needs a value"), "%s", err);
	cr_assert_eq(PARSE(&c, "boot", "--mem"), -EINVAL);
	cr_assert_eq(PARSE(&c, "boot", "--kernel="), -EINVAL);
	cr_assert(strstr(err, "empty path"), "%s", err);
}

Test(cli, rejects_malformed_numbers)
{
	static const char *const bad[] = { "",	   "12x", "-1", "+4",
					   "0x10", " 4",  "4 ", "1e3" };
	struct cli c;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char arg[32];

		snprintf(arg, sizeof(arg), "--vcpus=%s", bad[i]);
		cr_assert_eq(PARSE(&c, "boot", arg), -EINVAL, "'%s' accepted",
			     bad[i]);
		cr_assert(strstr(err, "not a whole number"), "%s", err);
	}
}

Test(cli, rejects_numbers_out_of_range)
{
	struct cli c;

	cr_assert_eq(PARSE(&c, "boot", "--vcpus", "0"), -EINVAL);
	cr_assert(strstr(err, "out of range"), "%s", err);
	cr_assert_eq(PARSE(&c, "boot", "--vcpus", "33"), -EINVAL);
	cr_assert_eq(PARSE(&c, "boot", "--mem", "8"), -EINVAL);
	cr_assert_eq(PARSE(&c, "boot", "--mem", "99999999999999999999"),
		     -EINVAL);
	cr_assert(strstr(err, "out of range"), "%s", err);
	cr_assert_eq(PARSE(&c, "boot", "--timeout", "604801"), -EINVAL);
	cr_assert_eq(PARSE(&c, "boot", "--vcpus", "32"), 0);
	cr_assert_eq(PARSE(&c, "boot", "--timeout", "604800"), 0);
}

Test(cli, rejects_odd_memory_sizes)
{
	struct cli c;

	cr_assert_eq(PARSE(&c, "boot", "--mem", "129"), -EINVAL);
	cr_assert(strstr(err, "multiple of 2 MiB"), "%s", err);
}

Test(cli, rejects_unknown_flags_and_commands)
{
	struct cli c;

	cr_assert_eq(PARSE(&c, "boot", "--kernal", "x"), -EINVAL);
	cr_assert(strstr(err, "unknown option '--kernal'"), "%s", err);
	cr_assert_eq(PARSE(&c, "boot", "--memory=4"), -EINVAL);
	cr_assert_eq(PARSE(&c, "boot", "extra"), -EINVAL);
	cr_assert_eq(PARSE(&c, "frobnicate"), -EINVAL);
	cr_assert(strstr(err, "unknown command 'frobnicate'"), "%s", err);
	cr_assert_eq(cli__parse(1, ARGV(NULL), &c, err, sizeof(err)), -EINVAL);
	cr_assert(strstr(err, "no command"), "%s", err);
}

Test(cli, initrd_and_no_initrd_conflict)
{
	struct cli c;

	cr_assert_eq(PARSE(&c, "boot", "--no-initrd"), 0);
	cr_assert(c.boot.no_initrd);
	cr_assert_eq(PARSE(&c, "boot", "--no-initrd", "--initrd", "/i"),
		     -EINVAL);
}

Test(cli, help_and_version)
{
	struct cli c;

	cr_assert_eq(PARSE(&c, "help"), 0);
	cr_assert_eq(c.cmd, CLI_HELP);
	cr_assert_eq(PARSE(&c, "--help"), 0);
	cr_assert_eq(c.cmd, CLI_HELP);
	cr_assert_eq(PARSE(&c, "version"), 0);
	cr_assert_eq(c.cmd, CLI_VERSION);
	cr_assert_eq(PARSE(&c, "version", "x"), -EINVAL);
}

Test(cli, drives_take_path_and_flags)
{
	struct cli c;

	cr_assert_eq(PARSE(&c, "boot", "--drive", "path=/a.img,root",
			   "--drive=ro,path=/b.img,direct=on"),
		     0, "%s", err);
	cr_assert_eq(c.boot.nr_drives, 2);
	cr_assert_str_eq(c.boot.drives[0].path, "/a.img");
	cr_assert(c.boot.drives[0].root);
	cr_assert_not(c.boot.drives[0].ro);
	cr_assert_str_eq(c.boot.drives[1].path, "/b.img");
	cr_assert(c.boot.drives[1].ro);
	cr_assert(c.boot.drives[1].direct);
	cr_assert_eq(c.boot.root_drive, 0);
}

Test(cli, rejects_malformed_drives)
{
	struct cli c;

	cr_assert_eq(PARSE(&c, "boot", "--drive", "ro"), -EINVAL);
	cr_assert(strstr(err, "no path=FILE"), "%s", err);
	cr_assert_eq(PARSE(&c, "boot", "--drive", "path=/a,rw"), -EINVAL);
	cr_assert(strstr(err, "unknown option 'rw'"), "%s", err);
	cr_assert_eq(PARSE(&c, "boot", "--drive", "path="), -EINVAL);
	cr_assert_eq(PARSE(&c, "boot", "--drive", "path=/a,root", "--drive",
			   "path=/b,root"),
		     -EINVAL);
	cr_assert(strstr(err, "only one drive can be root"), "%s", err);
	cr_assert_eq(PARSE(&c, "boot", "--drive=path=/1", "--drive=path=/2",
			   "--drive=path=/3", "--drive=path=/4",
			   "--drive=path=/5", "--drive=path=/6",
			   "--drive=path=/7", "--drive=path=/8",
			   "--drive=path=/9"),
		     -EINVAL);
	cr_assert(strstr(err, "at most 8 drives"), "%s", err);
}

Test(cli, root_drive_goes_on_the_kernel_command_line)
{
	char line[256];
	struct cli c;

	cr_assert_eq(PARSE(&c, "boot"), 0);
	cr_assert_eq(cli__kernel_cmdline(&c.boot, line, sizeof(line)), 0);
	cr_assert_str_eq(line, CLI_DEFAULT_CMDLINE);
	cr_assert_eq(PARSE(&c, "boot", "--drive=path=/a", "--drive",
			   "path=/b,root,ro", "--cmdline", "quiet"),
		     0);
	cr_assert_eq(cli__kernel_cmdline(&c.boot, line, sizeof(line)), 0);
	cr_assert_str_eq(line, "quiet root=/dev/vdb ro");
	cr_assert_eq(PARSE(&c, "boot", "--drive=path=/a,root", "--cmdline",
			   "quiet -- /bin/sh -c \"x --y\""),
		     0);
	cr_assert_eq(cli__kernel_cmdline(&c.boot, line, sizeof(line)), 0);
	cr_assert_str_eq(line,
			 "quiet root=/dev/vda rw -- /bin/sh -c \"x --y\"");
	cr_assert_eq(PARSE(&c, "boot", "--drive=path=/a,root", "--cmdline",
			   "--init-arg"),
		     0);
	cr_assert_eq(cli__kernel_cmdline(&c.boot, line, sizeof(line)), 0);
	cr_assert_str_eq(line, "--init-arg root=/dev/vda rw");
	cr_assert_eq(cli__kernel_cmdline(&c.boot, line, 10), -E2BIG);
}

Test(cli, snapshot_create_takes_its_flags_and_boot_flags)
{
	struct cli c;

	cr_assert_eq(PARSE(&c, "snapshot", "create", "-o", "/s.snap", "--mem",
			   "256", "--level=9", "--ready-line", "go",
			   "--continue"),
		     0, "%s", err);
	cr_assert_eq(c.cmd, CLI_SNAPSHOT_CREATE);
	cr_assert_str_eq(c.snap.output, "/s.snap");
	cr_assert_eq(c.snap.level, 9);
	cr_assert_not(c.snap.raw);
	cr_assert(c.snap.resume);
	cr_assert_str_eq(c.snap.ready_line, "go");
	cr_assert_eq(c.boot.mem_mib, 256);

	cr_assert_eq(PARSE(&c, "snapshot", "create", "--output=/r", "--raw"), 0,
		     "%s", err);
	cr_assert(c.snap.raw);
	cr_assert_eq(c.snap.level, 0);
	cr_assert_str_eq(c.snap.ready_line, CLI_DEFAULT_READY_LINE);

	cr_assert_eq(PARSE(&c, "snapshot", "create", "-o", "/s"), 0);
	cr_assert_eq(c.snap.level, CLI_DEFAULT_LEVEL);
}

Test(cli, snapshot_create_rejects_bad_flags)
{
	struct cli c;

	cr_assert_eq(PARSE(&c, "snapshot", "create"), -EINVAL);
	cr_assert(strstr(err, "-o FILE"), "%s", err);
	cr_assert_eq(PARSE(&c, "snapshot", "create", "-o"), -EINVAL);
	cr_assert_eq(
		PARSE(&c, "snapshot", "create", "-o", "/s", "--level", "20"),
		-EINVAL);
	cr_assert_eq(
		PARSE(&c, "snapshot", "create", "-o", "/s", "--level", "0"),
		-EINVAL);
	cr_assert_eq(PARSE(&c, "snapshot", "create", "-o", "/s", "--level", "3",
			   "--raw"),
		     -EINVAL);
	cr_assert_eq(
		PARSE(&c, "snapshot", "create", "-o", "/s", "--ready-line="),
		-EINVAL);
	cr_assert_eq(PARSE(&c, "snapshot", "create", "-o", "/s", "--bogus"),
		     -EINVAL);
	cr_assert(strstr(err, "snapshot create: unknown option"), "%s", err);
	cr_assert_eq(PARSE(&c, "snapshot"), -EINVAL);
	cr_assert_eq(PARSE(&c, "snapshot", "delete"), -EINVAL);
	/* Boot has none of snapshot create's flags. */
	cr_assert_eq(PARSE(&c, "boot", "--raw"), -EINVAL);
}

Test(cli, snapshot_inspect_takes_one_file)
{
	struct cli c;

	cr_assert_eq(PARSE(&c, "snapshot", "inspect", "/s"), 0);
	cr_assert_eq(c.cmd, CLI_SNAPSHOT_INSPECT);
	cr_assert_str_eq(c.snap.output, "/s");
	cr_assert_eq(PARSE(&c, "snapshot", "inspect"), -EINVAL);
	cr_assert_eq(PARSE(&c, "snapshot", "inspect", "/a", "/b"), -EINVAL);
}

Test(cli, restore_takes_a_file_a_mode_and_a_timeout)
{
	struct cli c;

	cr_assert_eq(PARSE(&c, "restore", "/s"), 0, "%s", err);
	cr_assert_eq(c.cmd, CLI_RESTORE);
	cr_assert_str_eq(c.restore.snapshot, "/s");
	cr_assert_eq(c.restore.mem_mode, CLI_MEM_UFFD);
	cr_assert_eq(c.restore.timeout_s, 0);
	cr_assert_eq(PARSE(&c, "restore", "--mem-mode=eager", "/s", "--timeout",
			   "5"),
		     0, "%s", err);
	cr_assert_eq(c.restore.mem_mode, CLI_MEM_EAGER);
	cr_assert_eq(c.restore.timeout_s, 5);
	cr_assert_eq(PARSE(&c, "restore", "/s", "--mem-mode", "file"), 0);
	cr_assert_eq(c.restore.mem_mode, CLI_MEM_FILE);
}

Test(cli, restore_takes_ksm)
{
	struct cli c;

	cr_assert_eq(PARSE(&c, "restore", "/s"), 0, "%s", err);
	cr_assert_not(c.restore.ksm);
	cr_assert_eq(PARSE(&c, "restore", "/s", "--ksm"), 0, "%s", err);
	cr_assert(c.restore.ksm);
	cr_assert_str_eq(c.restore.snapshot, "/s");
	cr_assert_eq(PARSE(&c, "restore", "--ksm", "--mem-mode", "file", "/s"),
		     0, "%s", err);
	cr_assert(c.restore.ksm);
	cr_assert_eq(c.restore.mem_mode, CLI_MEM_FILE);
	cr_assert_str_eq(c.restore.snapshot, "/s");
}

Test(cli, ksm_takes_no_value_and_only_restore_takes_it)
{
	struct cli c;

	cr_assert_eq(PARSE(&c, "restore", "/s", "--ksm=1"), -EINVAL);
	cr_assert(strstr(err, "--ksm=1"), "%s", err);
	cr_assert_eq(PARSE(&c, "restore", "/s", "--ksm", "yes"), -EINVAL);
	cr_assert(strstr(err, "one snapshot file"), "%s", err);
	cr_assert_eq(PARSE(&c, "restore", "--ksm"), -EINVAL);
	cr_assert_eq(PARSE(&c, "run", "--ksm", "/fn"), -EINVAL);
	cr_assert_eq(PARSE(&c, "boot", "--ksm"), -EINVAL);
}

Test(cli, restore_rejects_bad_arguments)
{
	struct cli c;

	cr_assert_eq(PARSE(&c, "restore"), -EINVAL);
	cr_assert_eq(PARSE(&c, "restore", "/a", "/b"), -EINVAL);
	cr_assert_eq(PARSE(&c, "restore", "/s", "--mem-mode", "lazy"), -EINVAL);
	cr_assert(strstr(err, "lazy"), "%s", err);
	cr_assert_eq(PARSE(&c, "restore", "/s", "--mem-mode"), -EINVAL);
	cr_assert_eq(PARSE(&c, "restore", "/s", "--timeout", "x"), -EINVAL);
	cr_assert_eq(PARSE(&c, "restore", "/s", "--kernel", "/k"), -EINVAL);
}

Test(cli, vsock_takes_a_cid_and_a_socket)
{
	struct cli c;

	cr_assert_eq(PARSE(&c, "boot", "--vsock", "cid=3,uds=/tmp/v.sock"), 0,
		     "%s", err);
	cr_assert_eq(c.boot.vsock_cid, 3);
	cr_assert_str_eq(c.boot.vsock_uds, "/tmp/v.sock");
	cr_assert_eq(PARSE(&c, "boot", "--vsock=uds=/v,cid=42"), 0, "%s", err);
	cr_assert_eq(c.boot.vsock_cid, 42);
	cr_assert_eq(PARSE(&c, "boot"), 0);
	cr_assert_eq(c.boot.vsock_cid, 0);
	cr_assert_eq(PARSE(&c, "restore", "/s", "--vsock-uds", "/v"), 0);
	cr_assert_str_eq(c.restore.vsock_uds, "/v");
}

Test(cli, vsock_rejects_bad_values)
{
	struct cli c;

	cr_assert_eq(PARSE(&c, "boot", "--vsock", "cid=2,uds=/v"), -EINVAL);
	cr_assert_eq(PARSE(&c, "boot", "--vsock", "cid=3"), -EINVAL);
	cr_assert_eq(PARSE(&c, "boot", "--vsock", "uds=/v"), -EINVAL);
	cr_assert_eq(PARSE(&c, "boot", "--vsock", "cid=x,uds=/v"), -EINVAL);
	cr_assert_eq(PARSE(&c, "boot", "--vsock", "cid=3,uds=/v,port=1"),
		     -EINVAL);
	cr_assert_eq(PARSE(&c, "boot", "--vsock", "cid=3,uds=/v", "--vsock",
			   "cid=4,uds=/w"),
		     -EINVAL);
	cr_assert_eq(PARSE(&c, "restore", "/s", "--vsock-uds"), -EINVAL);
}
