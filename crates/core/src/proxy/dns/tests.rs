//! The resolver against a small DNS server on loopback: answers come from the cache until
//! their TTL runs out.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};

use super::{Dns, Families};

/// Answers every A query with `answer` and the given TTL, any other type with no records
/// (and, as a real server does, the zone's SOA, which makes the empty answer cacheable);
/// counts the queries.
fn dns_server(answer: Ipv4Addr, ttl: u32) -> (SocketAddr, Arc<AtomicUsize>) {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = socket.local_addr().unwrap();
    let queries = Arc::new(AtomicUsize::new(0));
    let counted = queries.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 1500];
        while let Ok((n, from)) = socket.recv_from(&mut buf) {
            counted.fetch_add(1, Ordering::SeqCst);
            // The question: labels up to the root, then type and class.
            let mut end = 12;
            while end < n && buf[end] != 0 {
                end += 1 + buf[end] as usize;
            }
            let question_end = end + 5;
            if question_end > n {
                continue;
            }
            let qtype = u16::from_be_bytes([buf[end + 1], buf[end + 2]]);
            let a = qtype == 1;
            let mut reply = Vec::with_capacity(question_end + 16);
            reply.extend_from_slice(&buf[..2]); // id
            reply.extend_from_slice(&[0x81, 0x80, 0, 1, 0, u8::from(a), 0, u8::from(!a), 0, 0]);
            reply.extend_from_slice(&buf[12..question_end]);
            if a {
                reply.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1]);
                reply.extend_from_slice(&ttl.to_be_bytes());
                reply.extend_from_slice(&[0, 4]);
                reply.extend_from_slice(&answer.octets());
            } else {
                // SOA: owner = the question's name, mname and rname the root, then serial,
                // refresh, retry, expire and minimum (the negative TTL).
                reply.extend_from_slice(&[0xc0, 0x0c, 0, 6, 0, 1]);
                reply.extend_from_slice(&ttl.to_be_bytes());
                reply.extend_from_slice(&[0, 22, 0, 0]);
                for field in [1, 60, 60, 60, ttl] {
                    reply.extend_from_slice(&field.to_be_bytes());
                }
            }
            let _ = socket.send_to(&reply, from);
        }
    });
    (addr, queries)
}

fn resolver_for(server: SocketAddr) -> Dns {
    let mut udp = ConnectionConfig::udp();
    udp.port = server.port();
    let mut ns = NameServerConfig::udp(server.ip());
    ns.connections = vec![udp];
    Dns::with_config(ResolverConfig::from_parts(None, vec![], vec![ns])).unwrap()
}

#[tokio::test]
async fn a_name_is_queried_once_per_ttl() {
    let (server, queries) = dns_server(Ipv4Addr::new(127, 0, 0, 7), 1);
    let dns = resolver_for(server);
    for _ in 0..3 {
        let addr = dns.resolve("upstream.test", 8080, Families::V4Only).await.unwrap();
        assert_eq!(addr, "127.0.0.7:8080".parse().unwrap());
    }
    // Both families are asked for once (A and AAAA), then answered from the cache.
    assert_eq!(queries.load(Ordering::SeqCst), 2, "answers within the TTL come from the cache");
    tokio::time::sleep(Duration::from_millis(1300)).await;
    dns.resolve("upstream.test", 8080, Families::V4First).await.unwrap();
    assert_eq!(queries.load(Ordering::SeqCst), 4, "expired answers are asked again");
}

#[tokio::test]
async fn literals_skip_dns_and_families_filter_names() {
    let (server, queries) = dns_server(Ipv4Addr::new(127, 0, 0, 7), 60);
    let dns = resolver_for(server);
    assert_eq!(dns.resolve("[::1]", 1, Families::V4Only).await.unwrap(), "[::1]:1".parse().unwrap());
    assert_eq!(dns.resolve("10.1.2.3", 2, Families::V6Only).await.unwrap(), "10.1.2.3:2".parse().unwrap());
    assert_eq!(queries.load(Ordering::SeqCst), 0);
    let err = dns.resolve("upstream.test", 1, Families::V6Only).await.unwrap_err();
    assert!(err.to_string().contains("lookupFamily"), "{err}");
}
