/*
 * The boundary between lwIP and src/net/lwip/lwip-stack.ts. One netif that takes and hands out bare
 * IPv4 packets; TCP connections are named by handles (slot index + generation) so that a handle of a
 * finished connection can never reach a later connection that reuses the same lwIP pcb or slot.
 *
 * Every import is a notification: the JavaScript side records it and acts after the current export
 * returns, because lwIP is not re-entrant.
 */
#include "lwip/init.h"
#include "lwip/ip.h"
#include "lwip/ip4_frag.h"
#include "lwip/netif.h"
#include "lwip/pbuf.h"
#include "lwip/prot/ip4.h"
#include "lwip/tcp.h"
#include "lwip/timeouts.h"
#include "lwip/udp.h"

#define EXPORT(name) __attribute__((export_name(#name)))
#define IMPORT(name) __attribute__((import_module("env"), import_name(#name)))

IMPORT(now) u32_t js_now(void);
IMPORT(random) u32_t js_random(void);
IMPORT(output) void js_output(const void *packet, u32_t length);
/* Returns 0 to refuse the connection (nobody listens any more). */
IMPORT(tcp_accepted) int js_tcp_accepted(int listener, int handle, u32_t local_ip, u32_t local_port,
                                         u32_t remote_ip, u32_t remote_port);
IMPORT(tcp_connected) void js_tcp_connected(int handle, u32_t local_ip, u32_t local_port);
/* length 0: the peer's FIN. */
IMPORT(tcp_recv) void js_tcp_recv(int handle, const void *data, u32_t length);
/* length 0: a periodic nudge, so a writer that met a full heap tries again. */
IMPORT(tcp_sent) void js_tcp_sent(int handle, u32_t length);
/* The connection is gone inside lwIP (reset, timeout, closed); its handle is already invalid. */
IMPORT(tcp_error) void js_tcp_error(int handle, int err);
IMPORT(udp_recv) void js_udp_recv(u32_t source_ip, u32_t source_port, u32_t destination_ip,
                                  u32_t destination_port, const void *data, u32_t length);

u32_t sys_now(void) { return js_now(); }
uint32_t lw_random(void) { return js_random(); }

/* Staging areas shared with JavaScript: packets and data to lwIP, packets and datagrams from it. */
#define BUFFER_SIZE 65536
static u8_t in_buffer[BUFFER_SIZE];
static u8_t out_buffer[BUFFER_SIZE];

static struct netif lan;
static int catch_all;
static struct tcp_pcb *catch_all_listener;
static struct udp_pcb *catch_all_udp;
static struct udp_pcb *sender_udp;
static u16_t catch_all_udp_port;
static u32_t not_for_us;

#define SLOT_COUNT MEMP_NUM_TCP_PCB
#define SLOT_BITS 8
#define GENERATION_LIMIT 0x7fffff
static struct {
  struct tcp_pcb *pcb;
  u32_t generation;
  u8_t tx_shut;
} slots[SLOT_COUNT];
static u32_t next_generation = 1;

#define LISTENER_COUNT MEMP_NUM_TCP_PCB_LISTEN
static struct tcp_pcb *listeners[LISTENER_COUNT + 1]; /* id 0 is the catch-all */

static int slot_of(int handle) {
  int index = handle & ((1 << SLOT_BITS) - 1);
  u32_t generation = (u32_t)handle >> SLOT_BITS;
  if (handle <= 0 || index >= SLOT_COUNT || slots[index].pcb == NULL || slots[index].generation != generation) {
    return -1;
  }
  return index;
}

static struct tcp_pcb *pcb_of(int handle) {
  int index = slot_of(handle);
  return index < 0 ? NULL : slots[index].pcb;
}

static int slot_take(struct tcp_pcb *pcb) {
  for (int i = 0; i < SLOT_COUNT; i++) {
    if (slots[i].pcb == NULL) {
      slots[i].pcb = pcb;
      slots[i].generation = next_generation;
      slots[i].tx_shut = 0;
      next_generation = next_generation == GENERATION_LIMIT ? 1 : next_generation + 1;
      return (int)(slots[i].generation << SLOT_BITS) | i;
    }
  }
  return 0;
}

static void slot_release(int handle) {
  int index = slot_of(handle);
  if (index >= 0) slots[index].pcb = NULL;
}

/* After this lwIP owns the pcb alone: no callback can name the handle again. */
static void detach(struct tcp_pcb *pcb) {
  tcp_arg(pcb, NULL);
  tcp_recv(pcb, NULL);
  tcp_sent(pcb, NULL);
  tcp_err(pcb, NULL);
  tcp_poll(pcb, NULL, 0);
}

/* Hands the pcb to lwIP for the rest of the close; ERR_ABRT if it had to be aborted instead. */
static err_t release(struct tcp_pcb *pcb, int handle) {
  /* What lwIP delivered is already with JavaScript: a window that the reader has not reopened yet must
     not make tcp_close answer with RST ("data left unread") instead of FIN. */
  if (pcb->rcv_wnd < TCP_WND) tcp_recved(pcb, (u16_t)(TCP_WND - pcb->rcv_wnd));
  detach(pcb);
  slot_release(handle);
  if (tcp_close(pcb) == ERR_OK) return ERR_OK;
  tcp_abort(pcb);
  return ERR_ABRT;
}

static err_t on_recv(void *arg, struct tcp_pcb *pcb, struct pbuf *p, err_t err) {
  int handle = (int)(intptr_t)arg;
  LWIP_UNUSED_ARG(err);
  if (p == NULL) {
    int index = slot_of(handle);
    /* FIN both ways: hand the pcb back to lwIP now, before a timer can free it under the slot. */
    if (index >= 0 && slots[index].tx_shut) {
      js_tcp_recv(handle, NULL, 0);
      return release(pcb, handle);
    }
    js_tcp_recv(handle, NULL, 0);
    return ERR_OK;
  }
  for (struct pbuf *q = p; q != NULL; q = q->next) {
    if (q->len > 0) js_tcp_recv(handle, q->payload, q->len);
  }
  /* The window reopens only when the reader consumes the data (lw_tcp_recved). */
  pbuf_free(p);
  return ERR_OK;
}

static err_t on_sent(void *arg, struct tcp_pcb *pcb, u16_t length) {
  LWIP_UNUSED_ARG(pcb);
  js_tcp_sent((int)(intptr_t)arg, length);
  return ERR_OK;
}

static err_t on_poll(void *arg, struct tcp_pcb *pcb) {
  LWIP_UNUSED_ARG(pcb);
  js_tcp_sent((int)(intptr_t)arg, 0);
  return ERR_OK;
}

static void on_error(void *arg, err_t err) {
  int handle = (int)(intptr_t)arg;
  slot_release(handle);
  js_tcp_error(handle, err);
}

static void attach(struct tcp_pcb *pcb, int handle) {
  tcp_arg(pcb, (void *)(intptr_t)handle);
  tcp_recv(pcb, on_recv);
  tcp_sent(pcb, on_sent);
  tcp_err(pcb, on_error);
  tcp_poll(pcb, on_poll, 2);
  /* Relayed and interactive traffic: small writes should leave at once. */
  tcp_nagle_disable(pcb);
}

static err_t on_accept(void *arg, struct tcp_pcb *pcb, err_t err) {
  if (err != ERR_OK || pcb == NULL) return ERR_VAL;
  int handle = slot_take(pcb);
  if (handle == 0) {
    tcp_abort(pcb);
    return ERR_ABRT;
  }
  attach(pcb, handle);
  if (!js_tcp_accepted((int)(intptr_t)arg, handle, ip4_addr_get_u32(ip_2_ip4(&pcb->local_ip)), pcb->local_port,
                       ip4_addr_get_u32(ip_2_ip4(&pcb->remote_ip)), pcb->remote_port)) {
    detach(pcb);
    slot_release(handle);
    tcp_abort(pcb);
    return ERR_ABRT;
  }
  return ERR_OK;
}

static err_t on_connected(void *arg, struct tcp_pcb *pcb, err_t err) {
  LWIP_UNUSED_ARG(err); /* always ERR_OK in lwIP 2.1: failures arrive through on_error */
  js_tcp_connected((int)(intptr_t)arg, ip4_addr_get_u32(ip_2_ip4(&pcb->local_ip)), pcb->local_port);
  return ERR_OK;
}

static void on_udp(void *arg, struct udp_pcb *pcb, struct pbuf *p, const ip_addr_t *source, u16_t source_port) {
  LWIP_UNUSED_ARG(arg);
  LWIP_UNUSED_ARG(pcb);
  u16_t length = pbuf_copy_partial(p, out_buffer, p->tot_len, 0);
  js_udp_recv(ip4_addr_get_u32(ip_2_ip4(source)), source_port, ip4_addr_get_u32(ip4_current_dest_addr()),
              catch_all_udp_port, out_buffer, length);
  pbuf_free(p);
}

/* Hooks called from lwIP's input path (patched in by build.mjs). */
int lw_hook_accept_any(struct pbuf *p, struct netif *inp) {
  const struct ip_hdr *header = (const struct ip_hdr *)p->payload;
  u8_t protocol = IPH_PROTO(header);
  if (catch_all && !ip4_addr_isbroadcast(ip4_current_dest_addr(), inp) &&
      !ip4_addr_ismulticast(ip4_current_dest_addr()) && (protocol == IP_PROTO_TCP || protocol == IP_PROTO_UDP)) {
    return 1;
  }
  not_for_us++;
  return 0;
}

struct tcp_pcb_listen *lw_hook_tcp_catch_all(void) {
  return catch_all ? (struct tcp_pcb_listen *)catch_all_listener : NULL;
}

struct udp_pcb *lw_hook_udp_catch_all(unsigned short dest_port, int broadcast) {
  if (!catch_all || broadcast) return NULL;
  catch_all_udp_port = dest_port;
  return catch_all_udp;
}

static err_t lan_output(struct netif *netif, struct pbuf *p, const ip4_addr_t *next_hop) {
  LWIP_UNUSED_ARG(netif);
  LWIP_UNUSED_ARG(next_hop);
  if (p->next == NULL) {
    js_output(p->payload, p->len);
  } else {
    js_output(out_buffer, pbuf_copy_partial(p, out_buffer, p->tot_len, 0));
  }
  return ERR_OK;
}

static err_t lan_setup(struct netif *netif) {
  netif->name[0] = 'v';
  netif->name[1] = 'm';
  netif->output = lan_output;
  return ERR_OK;
}

/* Addresses are u32 in network byte order as lwIP stores them (the first octet in the low byte). */
EXPORT(lw_init) int lw_init(u32_t address, u32_t netmask, u32_t gateway, u32_t mtu, int accept_any) {
  ip4_addr_t ip, mask, gw;
  ip4_addr_set_u32(&ip, address);
  ip4_addr_set_u32(&mask, netmask);
  ip4_addr_set_u32(&gw, gateway);
  lwip_init();
  if (netif_add(&lan, &ip, &mask, &gw, NULL, lan_setup, ip4_input) == NULL) return ERR_IF;
  lan.mtu = (u16_t)mtu;
  netif_set_default(&lan);
  netif_set_link_up(&lan);
  netif_set_up(&lan);
  sender_udp = udp_new();
  if (sender_udp == NULL) return ERR_MEM;
  catch_all = accept_any;
  if (accept_any) {
    struct tcp_pcb *pcb = tcp_new();
    if (pcb == NULL || (catch_all_listener = tcp_listen(pcb)) == NULL) return ERR_MEM;
    tcp_accept(catch_all_listener, on_accept);
    listeners[0] = catch_all_listener;
    catch_all_udp = udp_new();
    if (catch_all_udp == NULL) return ERR_MEM;
    udp_recv(catch_all_udp, on_udp, NULL);
  }
  return ERR_OK;
}

EXPORT(lw_in_buffer) u8_t *lw_in_buffer(void) { return in_buffer; }

/* Returns 0 when lwIP took the packet, 1 when there was no memory for it. */
EXPORT(lw_input) int lw_input(u32_t length) {
  if (length == 0 || length > BUFFER_SIZE) return 1;
  struct pbuf *p = pbuf_alloc(PBUF_RAW, (u16_t)length, PBUF_POOL);
  if (p == NULL) return 1;
  pbuf_take(p, in_buffer, (u16_t)length);
  if (lan.input(p, &lan) != ERR_OK) pbuf_free(p);
  return 0;
}

EXPORT(lw_not_for_us) u32_t lw_not_for_us(void) { return not_for_us; }
EXPORT(lw_check_timeouts) void lw_check_timeouts(void) { sys_check_timeouts(); }
EXPORT(lw_sleeptime) u32_t lw_sleeptime(void) { return sys_timeouts_sleeptime(); }

EXPORT(lw_tcp_listen) int lw_tcp_listen(u32_t port) {
  int id = 1;
  while (id <= LISTENER_COUNT && listeners[id] != NULL) id++;
  if (id > LISTENER_COUNT) return ERR_MEM;
  struct tcp_pcb *pcb = tcp_new();
  if (pcb == NULL) return ERR_MEM;
  /* Connections that ended on this port linger in TIME-WAIT; they must not block listening again. */
  ip_set_option(pcb, SOF_REUSEADDR);
  err_t err = tcp_bind(pcb, netif_ip_addr4(&lan), (u16_t)port);
  struct tcp_pcb *listener = err == ERR_OK ? tcp_listen_with_backlog_and_err(pcb, TCP_DEFAULT_LISTEN_BACKLOG, &err) : NULL;
  if (listener == NULL) {
    tcp_close(pcb);
    return err;
  }
  tcp_arg(listener, (void *)(intptr_t)id);
  tcp_accept(listener, on_accept);
  listeners[id] = listener;
  return id;
}

EXPORT(lw_tcp_unlisten) void lw_tcp_unlisten(int id) {
  if (id < 1 || id > LISTENER_COUNT || listeners[id] == NULL) return;
  tcp_close(listeners[id]);
  listeners[id] = NULL;
}

/* Returns a handle (> 0) or an lwIP error (< 0). */
EXPORT(lw_tcp_connect) int lw_tcp_connect(u32_t address, u32_t port) {
  ip_addr_t remote;
  ip_addr_set_ip4_u32(&remote, address);
  struct tcp_pcb *pcb = tcp_new();
  if (pcb == NULL) return ERR_MEM;
  int handle = slot_take(pcb);
  if (handle == 0) {
    tcp_close(pcb);
    return ERR_MEM;
  }
  attach(pcb, handle);
  err_t err = tcp_connect(pcb, &remote, (u16_t)port, on_connected);
  if (err != ERR_OK) {
    detach(pcb);
    slot_release(handle);
    tcp_abort(pcb);
    return err;
  }
  return handle;
}

/* How many bytes lw_tcp_write would take now (0: wait for on_sent); < 0: the handle is gone. */
EXPORT(lw_tcp_writable) int lw_tcp_writable(int handle) {
  struct tcp_pcb *pcb = pcb_of(handle);
  if (pcb == NULL) return ERR_CONN;
  if (tcp_sndqueuelen(pcb) >= TCP_SND_QUEUELEN) return 0;
  u32_t room = tcp_sndbuf(pcb);
  return (int)(room > 0xffff ? 0xffff : room);
}

/* Queues `length` bytes from the in-buffer; returns the bytes taken, ERR_MEM when the heap shared by all
   connections is full (any connection's on_sent frees some), or another error. */
EXPORT(lw_tcp_write) int lw_tcp_write(int handle, u32_t length) {
  struct tcp_pcb *pcb = pcb_of(handle);
  if (pcb == NULL) return ERR_CONN;
  int room = lw_tcp_writable(handle);
  if ((u32_t)room < length) length = (u32_t)room;
  if (length == 0) return 0;
  err_t err = tcp_write(pcb, in_buffer, (u16_t)length, TCP_WRITE_FLAG_COPY);
  if (err != ERR_OK) return err;
  tcp_output(pcb);
  return (int)length;
}

EXPORT(lw_tcp_recved) void lw_tcp_recved(int handle, u32_t length) {
  struct tcp_pcb *pcb = pcb_of(handle);
  while (pcb != NULL && length > 0) {
    u16_t step = length > 0xffff ? 0xffff : (u16_t)length;
    tcp_recved(pcb, step);
    length -= step;
  }
}

/* Sends FIN; the peer may go on sending. */
EXPORT(lw_tcp_shutdown) int lw_tcp_shutdown(int handle) {
  int index = slot_of(handle);
  if (index < 0) return ERR_CONN;
  slots[index].tx_shut = 1;
  return tcp_shutdown(slots[index].pcb, 0, 1);
}

/* Both directions are finished (or the reader gave up): lwIP completes the close on its own. */
EXPORT(lw_tcp_close) void lw_tcp_close(int handle) {
  struct tcp_pcb *pcb = pcb_of(handle);
  if (pcb != NULL) release(pcb, handle);
}

EXPORT(lw_tcp_abort) void lw_tcp_abort(int handle) {
  struct tcp_pcb *pcb = pcb_of(handle);
  if (pcb == NULL) return;
  detach(pcb);
  slot_release(handle);
  tcp_abort(pcb);
}

/* A datagram from any source address and port (replies on behalf of a relayed destination). */
EXPORT(lw_udp_send) int lw_udp_send(u32_t source_ip, u32_t source_port, u32_t destination_ip,
                                    u32_t destination_port, u32_t length) {
  if (length > 0xffff - 8 - 20) return ERR_VAL;
  struct pbuf *p = pbuf_alloc(PBUF_TRANSPORT, (u16_t)length, PBUF_RAM);
  if (p == NULL) return ERR_MEM;
  pbuf_take(p, in_buffer, (u16_t)length);
  ip_addr_t source, destination;
  ip_addr_set_ip4_u32(&source, source_ip);
  ip_addr_set_ip4_u32(&destination, destination_ip);
  sender_udp->local_port = (u16_t)source_port;
  err_t err = udp_sendto_if_src(sender_udp, p, &destination, (u16_t)destination_port, &lan, &source);
  pbuf_free(p);
  return err;
}
