/* lwIP configuration for <linux-vm>'s host node: bare IPv4 packets in and out (the virtual switch does
   Ethernet, ARP and DHCP), raw callback API without an OS, every buffer in static pools. */
#ifndef LINUX_VM_LWIPOPTS_H
#define LINUX_VM_LWIPOPTS_H

#define NO_SYS 1
#define LWIP_TIMERS 1
#define SYS_LIGHTWEIGHT_PROT 0
#define LWIP_NETCONN 0
#define LWIP_SOCKET 0
#define LWIP_NOASSERT 1
#define LWIP_STATS 0
#define LWIP_SINGLE_NETIF 1

/* Layer 3 only: no Ethernet, no ARP, so nothing waits for address resolution (the first SYN leaves at once). */
#define LWIP_ARP 0
#define LWIP_ETHERNET 0
#define LWIP_IPV4 1
#define LWIP_IPV6 0
#define LWIP_ICMP 1
#define LWIP_RAW 0
#define LWIP_DHCP 0
#define LWIP_AUTOIP 0
#define LWIP_IGMP 0
#define LWIP_DNS 0
#define LWIP_UDP 1
#define LWIP_TCP 1
#define IP_REASSEMBLY 1
#define IP_FRAG 1
#define LWIP_RANDOMIZE_INITIAL_LOCAL_PORTS 1
/* Listening again on a port whose connections linger in TIME-WAIT. */
#define SO_REUSE 1

/* Memory: a heap for outgoing data (tcp_write copies into it), a pool for incoming packets. The heap holds
   every connection's full send buffer (~40 KiB with pbuf overhead) plus room for ACKs and datagrams: when
   it ran full, ACKs could not be sent until the next timer tick and busy connections stalled. */
#define MEM_ALIGNMENT 4
#define MEM_SIZE (MEMP_NUM_TCP_PCB * 40 * 1024 + 256 * 1024)
#define PBUF_POOL_SIZE 256
#define PBUF_POOL_BUFSIZE 1600
#define MEMP_NUM_PBUF 32
#define MEMP_NUM_UDP_PCB 4
#define MEMP_NUM_TCP_PCB 128
#define MEMP_NUM_TCP_PCB_LISTEN 16
#define MEMP_NUM_TCP_SEG 1024
#define MEMP_NUM_REASSDATA 8
#define MEMP_NUM_FRAG_PBUF 32
#define IP_REASS_MAX_PBUFS 64

/* TCP: a full 16-bit window without scaling; send buffer per connection 32 KiB. */
#define TCP_MSS 1460
#define TCP_WND (44 * TCP_MSS)
#define TCP_SND_BUF (22 * TCP_MSS)
#define TCP_SND_QUEUELEN (4 * TCP_SND_BUF / TCP_MSS)
#define TCP_QUEUE_OOSEQ 1
#define TCP_LISTEN_BACKLOG 0
#define LWIP_TCP_KEEPALIVE 0
#define LWIP_WND_SCALE 0
#define TCP_CALCULATE_EFF_SEND_MSS 1

/* Catch-all (relay NAT), see glue.c and the patches applied by build.mjs: accept TCP and UDP for any
   destination address and port; the connection's local endpoint is the original destination. */
struct pbuf;
struct netif;
struct tcp_pcb_listen;
struct udp_pcb;
int lw_hook_accept_any(struct pbuf *p, struct netif *inp);
struct tcp_pcb_listen *lw_hook_tcp_catch_all(void);
struct udp_pcb *lw_hook_udp_catch_all(unsigned short dest_port, int broadcast);
#define LWIP_HOOK_IP4_ACCEPT_ANY(p, inp) lw_hook_accept_any(p, inp)
#define LWIP_HOOK_TCP_CATCH_ALL_LISTENER() lw_hook_tcp_catch_all()
#define LWIP_HOOK_UDP_CATCH_ALL_PCB(dest, broadcast) lw_hook_udp_catch_all(dest, broadcast)

#endif
