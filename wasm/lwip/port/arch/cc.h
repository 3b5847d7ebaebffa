/* lwIP's architecture header for wasm32 (clang, wasi-libc headers, no OS). */
#ifndef LINUX_VM_LWIP_ARCH_CC_H
#define LINUX_VM_LWIP_ARCH_CC_H

#include <stddef.h>
#include <stdint.h>

#define BYTE_ORDER LITTLE_ENDIAN

/* No console: diagnostics compile away, and a failed check stops the module (the binding reports it)
   rather than carrying on with corrupted state. */
#define LWIP_PLATFORM_DIAG(x) do { } while (0)
#define LWIP_PLATFORM_ASSERT(x) __builtin_trap()

/* wasm has no byte-swap instruction, but the builtins are smaller than lwIP's portable versions. */
#define lwip_htons(x) ((u16_t)__builtin_bswap16((u16_t)(x)))
#define lwip_htonl(x) ((u32_t)__builtin_bswap32((u32_t)(x)))
#define LWIP_DONT_PROVIDE_BYTEORDER_FUNCTIONS

/* Random numbers come from the host (crypto.getRandomValues): initial sequence numbers and ports. */
uint32_t lw_random(void);
#define LWIP_RAND() lw_random()

#endif
