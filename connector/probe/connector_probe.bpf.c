/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The connector's eBPF probe: counts program executions
 * (tracepoint sched/sched_process_exec) in a one-slot array map.
 *
 * connectord compiles it at start, as the connector does, with
 * `clang -target bpf` against the running kernel's header tree: the
 * build tree's generated headers (autoconf.h, version.h, utsrelease.h,
 * the arch's generated asm headers) and the source tree's include,
 * arch/<arch>/include and uapi directories, with linux/kconfig.h forced
 * in (connector/src/compile.rs has the flags). A tree that lacks any of
 * them fails here, and that failure is fault 11.
 *
 * CONNECTOR_RELEASE is the running kernel's release (uname -r): headers
 * configured for another kernel are refused at compile time.
 */
#include <linux/types.h>
#include <linux/limits.h>
#include <linux/version.h>
#include <generated/utsrelease.h>
#include <uapi/linux/bpf.h>

#define SEC(name) __attribute__((section(name), used))

#ifndef CONNECTOR_RELEASE
#error "CONNECTOR_RELEASE (the running kernel's release) is not defined"
#endif

_Static_assert(__builtin_strcmp(UTS_RELEASE, CONNECTOR_RELEASE) == 0,
	       "these headers are for kernel " UTS_RELEASE
	       ", the running kernel is " CONNECTOR_RELEASE);

/* The legacy map definition ("maps" section), read by the loader. */
struct connector_map_def {
	unsigned int type;
	unsigned int key_size;
	unsigned int value_size;
	unsigned int max_entries;
	unsigned int map_flags;
};

struct connector_map_def SEC("maps") connector_events = {
	.type = BPF_MAP_TYPE_ARRAY,
	.key_size = sizeof(__u32),
	.value_size = sizeof(__u64),
	.max_entries = 1,
};

static void *(*bpf_map_lookup_elem)(void *map, const void *key) =
	(void *)BPF_FUNC_map_lookup_elem;

SEC("tracepoint/sched/sched_process_exec")
int connector_exec(void *ctx)
{
	__u32 key = 0;
	__u64 *count = bpf_map_lookup_elem(&connector_events, &key);

	if (count)
		__sync_fetch_and_add(count, 1);
	return 0;
}

char _license[] SEC("license") = "GPL";
__u32 _version SEC("version") = LINUX_VERSION_CODE;
