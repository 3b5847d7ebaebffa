// Command peer joins a tailnet with tsnet (userspace, no root) and serves, on its
// tailnet addresses only:
//
//	TCP 80  HTTP: "/" answers "hello from <hostname>\n"; "/bytes?n=N" answers N bytes
//	TCP 7   echo
//	UDP 7   echo
//
// It reads the auth key from $TS_AUTHKEY (never from the command line, never logged) and
// prints one JSON line {"name","ipv4","ipv6"} on stdout once it is Running. It exits on
// SIGTERM/SIGINT or when stdin is closed (so it never outlives its parent).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"tailscale.com/tsnet"
)

func main() {
	controlURL := flag.String("control-url", "", "control server URL")
	hostname := flag.String("hostname", "peer", "tailnet hostname")
	dir := flag.String("dir", "", "state directory")
	verbose := flag.Bool("v", false, "log tsnet's output to stderr")
	flag.Parse()

	authKey := os.Getenv("TS_AUTHKEY")
	os.Unsetenv("TS_AUTHKEY")
	s := &tsnet.Server{
		Hostname:   *hostname,
		ControlURL: *controlURL,
		AuthKey:    authKey,
		Ephemeral:  true,
		Dir:        *dir,
		UserLogf:   log.Printf,
	}
	if *verbose {
		s.Logf = func(format string, args ...any) {
			line := fmt.Sprintf(format, args...)
			if authKey != "" {
				line = strings.ReplaceAll(line, authKey, "[auth key redacted]")
			}
			log.Print(line)
		}
	}
	defer s.Close()

	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer cancel()
	go func() { // parent gone → stdin EOF → exit
		io.Copy(io.Discard, os.Stdin)
		cancel()
	}()

	upCtx, upCancel := context.WithTimeout(ctx, 90*time.Second)
	st, err := s.Up(upCtx)
	upCancel()
	if err != nil {
		log.Fatalf("peer: up: %v", err)
	}
	ip4, ip6 := s.TailscaleIPs()

	for _, ip := range []string{ip4.String(), ip6.String()} {
		serveHTTP(s, ip, *hostname)
		serveTCPEcho(s, ip)
		serveUDPEcho(s, ip)
	}

	name := ""
	if st.Self != nil {
		name = strings.TrimSuffix(st.Self.DNSName, ".")
	}
	out, _ := json.Marshal(map[string]string{"name": name, "ipv4": ip4.String(), "ipv6": ip6.String()})
	fmt.Println(string(out))

	<-ctx.Done()
}

func listen(s *tsnet.Server, network, ip, port string) net.Listener {
	ln, err := s.Listen(network, net.JoinHostPort(ip, port))
	if err != nil {
		log.Fatalf("peer: listen %s %s:%s: %v", network, ip, port, err)
	}
	return ln
}

func serveHTTP(s *tsnet.Server, ip, hostname string) {
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from %s\n", hostname)
	})
	mux.HandleFunc("/bytes", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		if n < 0 || n > 64<<20 {
			http.Error(w, "n out of range", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(n))
		buf := make([]byte, 32<<10)
		for i := range buf {
			buf[i] = byte(i)
		}
		for n > 0 {
			k := min(n, len(buf))
			if _, err := w.Write(buf[:k]); err != nil {
				return
			}
			n -= k
		}
	})
	go http.Serve(listen(s, "tcp", ip, "80"), mux)
}

func serveTCPEcho(s *tsnet.Server, ip string) {
	ln := listen(s, "tcp", ip, "7")
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}()
}

func serveUDPEcho(s *tsnet.Server, ip string) {
	pc, err := s.ListenPacket("udp", net.JoinHostPort(ip, "7"))
	if err != nil {
		log.Fatalf("peer: listen udp %s:7: %v", ip, err)
	}
	go func() {
		buf := make([]byte, 65535)
		for {
			n, addr, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(buf[:n], addr)
		}
	}()
}
