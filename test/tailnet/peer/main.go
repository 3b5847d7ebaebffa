// Command peer joins a tailnet with tsnet (userspace, no root) and serves, on its
// tailnet addresses only:
//
//	TCP 80  HTTP: "/" answers "hello from <hostname>\n"; "/bytes?n=N" answers N bytes
//	TCP 7   echo
//	UDP 7   echo
//
// With -control-addr it also serves, on that (loopback) address, requests for tests to make it act
// on the tailnet:
//
//	GET /fetch?url=U        fetches U over the tailnet; answers its status line and body
//	GET /send?addr=A&n=N    connects to TCP A, sends N bytes of pattern(), closes;
//	                        answers {"sent","sha256"}
//	GET /receive?addr=A     connects to TCP A, reads until EOF; answers {"received","sha256"}
//
// It reads the auth key from $TS_AUTHKEY (never from the command line, never logged) and
// prints one JSON line {"name","ipv4","ipv6"} on stdout once it is Running. It exits on
// SIGTERM/SIGINT or when stdin is closed (so it never outlives its parent).
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
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
	controlAddr := flag.String("control-addr", "", "loopback address for the test control API (empty: none)")
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

	control := ""
	if *controlAddr != "" {
		ln, err := net.Listen("tcp", *controlAddr)
		if err != nil {
			log.Fatalf("peer: control listener: %v", err)
		}
		control = "http://" + ln.Addr().String()
		go http.Serve(ln, controlAPI(s))
	}

	name := ""
	if st.Self != nil {
		name = strings.TrimSuffix(st.Self.DNSName, ".")
	}
	out, _ := json.Marshal(map[string]string{"name": name, "ipv4": ip4.String(), "ipv6": ip6.String(), "control": control})
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

// pattern fills b with the bytes of the stream at offset off: byte i of a stream is (i*7 + i>>11) & 0xff,
// so that shifted or repeated blocks change the checksum.
func pattern(b []byte, off int) {
	for i := range b {
		j := off + i
		b[i] = byte(j*7 + j>>11)
	}
}

func controlAPI(s *tsnet.Server) http.Handler {
	mux := http.NewServeMux()
	client := s.HTTPClient()
	client.Timeout = 60 * time.Second
	mux.HandleFunc("/fetch", func(w http.ResponseWriter, r *http.Request) {
		res, err := client.Get(r.URL.Query().Get("url"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer res.Body.Close()
		fmt.Fprintf(w, "%s\n", res.Status)
		io.Copy(w, res.Body)
	})
	dial := func(w http.ResponseWriter, r *http.Request) net.Conn {
		ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
		defer cancel()
		c, err := s.Dial(ctx, "tcp", r.URL.Query().Get("addr"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return nil
		}
		c.SetDeadline(time.Now().Add(5 * time.Minute))
		return c
	}
	mux.HandleFunc("/send", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		c := dial(w, r)
		if c == nil {
			return
		}
		defer c.Close()
		h := sha256.New()
		buf := make([]byte, 16<<10)
		sent := 0
		for sent < n {
			k := min(n-sent, len(buf))
			pattern(buf[:k], sent)
			if _, err := c.Write(buf[:k]); err != nil {
				http.Error(w, fmt.Sprintf("after %d bytes: %v", sent, err), http.StatusBadGateway)
				return
			}
			h.Write(buf[:k])
			sent += k
		}
		if tc, ok := c.(interface{ CloseWrite() error }); ok {
			tc.CloseWrite()
			io.Copy(io.Discard, c) // until the other side closes too
		}
		json.NewEncoder(w).Encode(map[string]any{"sent": sent, "sha256": hex.EncodeToString(h.Sum(nil))})
	})
	mux.HandleFunc("/receive", func(w http.ResponseWriter, r *http.Request) {
		c := dial(w, r)
		if c == nil {
			return
		}
		defer c.Close()
		h := sha256.New()
		n, err := io.Copy(h, c)
		if err != nil {
			http.Error(w, fmt.Sprintf("after %d bytes: %v", n, err), http.StatusBadGateway)
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"received": n, "sha256": hex.EncodeToString(h.Sum(nil))})
	})
	return mux
}
