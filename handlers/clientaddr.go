package handlers

import (
	"net/http"
	"net/netip"
	"slices"
	"strings"
)

// clientAddr returns the address a request came from: its connection's
// peer, or, when that peer is one of the trusted proxies, the rightmost
// X-Forwarded-For entry that is not itself a trusted proxy. Each proxy
// appends the address it was called from, so the entries left of that one
// are whatever the client chose to send, and are never read. An entry that
// is not an address (with or without a port) ends the walk at the trusted
// proxy that passed it on. Addresses are unmapped (::ffff:192.0.2.1 is
// 192.0.2.1) and without zone; a peer that is not an IP address (a unix
// socket) is the invalid Addr.
func (h *Handler) clientAddr(r *http.Request) netip.Addr {
	client := parseHop(r.RemoteAddr)
	if !h.trustedProxy(client) {
		return client
	}
	hops := strings.Join(r.Header.Values("X-Forwarded-For"), ",")
	for hops != "" {
		i := strings.LastIndexByte(hops, ',')
		hop := parseHop(strings.TrimSpace(hops[i+1:]))
		hops = hops[:max(i, 0)]
		if !hop.IsValid() {
			break
		}
		client = hop
		if !h.trustedProxy(hop) {
			break
		}
	}
	return client
}

// trustedProxy reports whether a is in one of the trusted proxies' ranges.
func (h *Handler) trustedProxy(a netip.Addr) bool {
	return a.IsValid() && slices.ContainsFunc(h.trustedProxies, func(p netip.Prefix) bool { return p.Contains(a) })
}

// parseHop reads an address, with or without a port (192.0.2.1,
// 192.0.2.1:443, 2001:db8::1, [2001:db8::1]:443), unmapped and without
// zone; the invalid Addr if s is none of these.
func parseHop(s string) netip.Addr {
	a, err := netip.ParseAddr(s)
	if err != nil {
		ap, perr := netip.ParseAddrPort(s)
		if perr != nil {
			return netip.Addr{}
		}
		a = ap.Addr()
	}
	return a.Unmap().WithZone("")
}

// addrKey is how the sign-in limiter and the webhook budget name a client
// address. An IPv6 address counts with its whole /64: one host or
// household is commonly given that many, and must not get a fresh count
// (or a fresh part of the budget) from each of them.
func addrKey(a netip.Addr) string {
	if a.Is6() {
		return netip.PrefixFrom(a, 64).Masked().String()
	}
	return a.String()
}
