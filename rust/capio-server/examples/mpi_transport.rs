//! The MPI transport's own figures between ranks 0 and 1, for `benches/bench_multinode.py`:
//! point-to-point bandwidth (`total` bytes in `chunk`-byte messages, rank 0 to rank 1, one
//! acknowledgement at the end) and the round trip of a small message (median of many ping-pongs).
//! Prints one JSON line on rank 0. Run it as the servers run: `mpirun -np 2 ... mpi_transport
//! [total] [chunk]`.

use mpi::traits::*;
use std::time::Instant;

fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let total = args.first().copied().unwrap_or(1 << 30);
    let chunk = args.get(1).copied().unwrap_or(1 << 20) as usize;
    let Some(universe) = mpi::initialize() else {
        eprintln!("MPI is already initialised");
        std::process::exit(1);
    };
    let world = universe.world();
    let (rank, peer) = (world.rank(), 1 - world.rank());
    if world.size() != 2 {
        eprintln!("run with exactly 2 ranks");
        std::process::exit(1);
    }
    let other = world.process_at_rank(peer);
    let mut buffer = vec![1u8; chunk];
    // Round trip: one byte there and back, after a warm-up.
    let mut trips = Vec::new();
    let mut byte = [0u8; 1];
    for i in 0..2100 {
        world.barrier();
        let t = Instant::now();
        if rank == 0 {
            other.send(&byte[..]);
            other.receive_into(&mut byte[..]);
        } else {
            other.receive_into(&mut byte[..]);
            other.send(&byte[..]);
        }
        if i >= 100 {
            trips.push(t.elapsed().as_secs_f64());
        }
    }
    trips.sort_by(f64::total_cmp);
    // Bandwidth: a warm-up of 64 messages, then `total` bytes.
    for phase in [64 * chunk as u64, total] {
        world.barrier();
        let t = Instant::now();
        let mut moved = 0u64;
        while moved < phase {
            if rank == 0 {
                other.send(&buffer[..]);
            } else {
                other.receive_into(&mut buffer[..]);
            }
            moved += chunk as u64;
        }
        if rank == 0 {
            other.receive_into(&mut byte[..]);
        } else {
            other.send(&byte[..]);
        }
        if rank == 0 && phase == total {
            let seconds = t.elapsed().as_secs_f64();
            println!(
                "{{\"bytes\": {moved}, \"seconds\": {seconds}, \"round_trip_seconds\": {}}}",
                trips[trips.len() / 2]
            );
        }
    }
}
