//! Run: cargo run --example fleet
//!
//! A server commanding a fleet of drones, each a child process: commands, requests and
//! files over one typed protocol, and a drone that is killed and restarted. The drones
//! connect to the server's authenticated TCP listener and serve the `Drone` protocol
//! declared with `procwire::rpc::dispatch!`; the server holds a `Requester` per drone and
//!
//! 1. asks each drone who it is and sends it a one-way `TakeOff` command;
//! 2. requests values (battery, altitude) and checks them;
//! 3. pushes a 2 MiB file to every drone (`push_file`) and checks its checksum there;
//! 4. kills drone 1 while a request to it is in flight (which fails with `Disconnected`,
//!    alone), restarts it, and brings the new process back to the fleet's state;
//! 5. fetches every drone's command log as a file (`get_file`) and checks it.
//!
//! It exits 0 when everything checked out.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use procwire::rpc::{serve, BoxError, Call, Reply, Requester, RpcConnection};
use procwire::{Client, Error, Listener};

procwire::rpc::dispatch! {
    /// What a drone does when told.
    pub trait Drone, client DroneClient {
        enum DroneRequest, DroneResponse;
        /// The drone's number.
        Ident => fn ident() -> u32;
        /// Climb (or descend) to `metres`.
        TakeOff => fn take_off(metres: u32) -> ();
        /// The battery's charge in percent.
        Battery => fn battery() -> u32;
        /// The current altitude in metres.
        Altitude => fn altitude() -> u32;
        /// Keep the file pushed with this request as `name`; returns its length.
        Store => fn store(name: String) -> u64;
        /// A checksum of the stored file `name`.
        Checksum => fn checksum(name: String) -> u64;
        /// Hold still for `millis` (a slow request).
        Hover => fn hover(millis: u64) -> ();
        /// The command log, answered with a file (see `serve_drone`).
        Log => fn log() -> ();
    }
}

const KEY: &str = "fleet key";
const DRONES: u32 = 3;
const TIMEOUT: Duration = Duration::from_secs(5);
const FILE_LEN: usize = 2 << 20;

fn main() -> Result<(), BoxError> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--drone") {
        return drone(args[2].parse()?, &args[3], PathBuf::from(&args[4]));
    }
    let started = Instant::now();
    let dir = std::env::temp_dir().join(format!("procwire-fleet-{}", std::process::id()));
    fs::create_dir_all(&dir)?;
    let result = command_fleet(&dir);
    fs::remove_dir_all(&dir)?;
    result?;
    println!("fleet done in {:.2?}", started.elapsed());
    Ok(())
}

/// A drone process, and the server's requester for it.
struct Member {
    process: Child,
    drone: Requester<DroneRequest, DroneResponse>,
}

fn command_fleet(dir: &Path) -> Result<(), BoxError> {
    let listener = Listener::builder().authkey(KEY).bind("127.0.0.1:0")?;
    let mut fleet = BTreeMap::new();
    for i in 0..DRONES {
        fleet.insert(i, launch(&listener, i, dir)?);
    }
    let payload: Vec<u8> = (0..FILE_LEN).map(|i| (i * 7 % 251) as u8).collect();
    let map = dir.join("map.bin");
    fs::write(&map, &payload)?;
    for (&i, m) in &fleet {
        bring_up(&m.drone, i, &map, checksum(&payload))?;
    }
    println!("{DRONES} drones up, commanded, and holding the map");

    // Kill drone 1 while a slow request to it is in flight: that request fails alone.
    let hover = fleet[&1]
        .drone
        .start(DroneRequest::Hover { millis: 2_000 }, TIMEOUT)?;
    std::thread::sleep(Duration::from_millis(100));
    let mut old = fleet.remove(&1).expect("drone 1");
    old.process.kill()?;
    old.process.wait()?;
    assert!(matches!(hover.wait(), Err(Error::Disconnected)));
    assert_eq!(
        fleet[&0].drone.altitude(TIMEOUT)?,
        10,
        "the others carry on"
    );
    println!("drone 1 killed mid-request; the request failed with Disconnected");
    let member = launch(&listener, 1, dir)?;
    bring_up(&member.drone, 1, &map, checksum(&payload))?;
    fleet.insert(1, member);
    println!("drone 1 restarted and back in formation");

    for (&i, m) in &fleet {
        let log = dir.join(format!("log-{i}.txt"));
        m.drone
            .get_file(DroneRequest::Log {}, &log, 1 << 20, TIMEOUT)?;
        let text = fs::read_to_string(&log)?;
        assert!(
            text.contains(&format!("take_off {}", 10 * (i + 1))),
            "{text}"
        );
        assert!(text.contains("store map.bin"), "{text}");
    }
    println!("command logs fetched from every drone");
    for (_, mut m) in fleet {
        drop(m.drone); // the drone's serve loop ends when the connection closes
        assert!(m.process.wait()?.success());
    }
    Ok(())
}

/// Starts drone `i` and accepts its connection.
fn launch(listener: &Listener, i: u32, dir: &Path) -> Result<Member, BoxError> {
    let home = dir.join(format!("drone-{i}"));
    fs::create_dir_all(&home)?;
    let process = Command::new(std::env::current_exe()?)
        .args([
            "--drone",
            &i.to_string(),
            &listener.local_addr().to_string(),
        ])
        .arg(&home)
        .spawn()?;
    let conn: RpcConnection<DroneRequest, DroneResponse> = listener.accept()?;
    let drone = Requester::new(conn)?;
    assert_eq!(drone.ident(TIMEOUT)?, i);
    Ok(Member { process, drone })
}

/// Commands drone `i` to its altitude, checks its values, pushes the map and checks it.
fn bring_up(
    drone: &Requester<DroneRequest, DroneResponse>,
    i: u32,
    map: &Path,
    sum: u64,
) -> Result<(), BoxError> {
    let metres = 10 * (i + 1);
    drone.send(DroneRequest::TakeOff { metres })?; // one-way: a message_callback
    drone.flush(TIMEOUT)?;
    assert_eq!(drone.altitude(TIMEOUT)?, metres);
    assert_eq!(drone.battery(TIMEOUT)?, 100 - metres / 10);
    let len = drone.push_file(
        DroneRequest::Store {
            name: "map.bin".into(),
        },
        File::open(map)?,
        TIMEOUT,
    )?;
    let DroneResponse::Store(len) = len else {
        return Err("store answered with another response".into());
    };
    assert_eq!(len, FILE_LEN as u64);
    assert_eq!(drone.checksum("map.bin".into(), TIMEOUT)?, sum);
    Ok(())
}

/// FNV-1a.
fn checksum(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// A simulated drone, keeping files in `home`.
struct Sim {
    id: u32,
    home: PathBuf,
    altitude: u32,
    stored: BTreeMap<String, u64>,
    log: Vec<String>,
}

impl Drone for Sim {
    fn ident(&mut self) -> Result<u32, BoxError> {
        Ok(self.id)
    }
    fn take_off(&mut self, metres: u32) -> Result<(), BoxError> {
        self.log.push(format!("take_off {metres}"));
        self.altitude = metres;
        Ok(())
    }
    fn battery(&mut self) -> Result<u32, BoxError> {
        Ok(100 - self.altitude / 10)
    }
    fn altitude(&mut self) -> Result<u32, BoxError> {
        Ok(self.altitude)
    }
    fn store(&mut self, name: String) -> Result<u64, BoxError> {
        self.log.push(format!("store {name}"));
        self.stored
            .get(&name)
            .copied()
            .ok_or_else(|| format!("no file came with {name}").into())
    }
    fn checksum(&mut self, name: String) -> Result<u64, BoxError> {
        Ok(checksum(&fs::read(self.home.join(name))?))
    }
    fn hover(&mut self, millis: u64) -> Result<(), BoxError> {
        std::thread::sleep(Duration::from_millis(millis));
        Ok(())
    }
    fn log(&mut self) -> Result<(), BoxError> {
        Err("the log is answered with a file".into())
    }
}

/// The drone process: connects to the server and serves it until it hangs up.
fn drone(id: u32, addr: &str, home: PathBuf) -> Result<(), BoxError> {
    let conn: RpcConnection<DroneRequest, DroneResponse> =
        Client::builder().authkey(KEY).connect(addr)?;
    let mut sim = Sim {
        id,
        home,
        altitude: 0,
        stored: BTreeMap::new(),
        log: Vec::new(),
    };
    serve(&conn, |call| serve_drone(&mut sim, call))?;
    Ok(())
}

/// Receives a pushed file before `dispatch`, and answers `Log` with a file.
fn serve_drone(
    sim: &mut Sim,
    mut call: Call<'_, DroneRequest>,
) -> Result<Reply<DroneResponse>, BoxError> {
    if let (Some(file), DroneRequest::Store { name }) = (call.file.take(), &call.body) {
        let len = file.save(sim.home.join(name), 1 << 30)?;
        sim.stored.insert(name.clone(), len);
    }
    if let DroneRequest::Log {} = call.body {
        let path = sim.home.join("log.txt");
        fs::write(&path, sim.log.join("\n"))?;
        return Ok(Reply::File(File::open(path)?));
    }
    Ok(Reply::Value(sim.dispatch(call)?))
}
