use edge::*;
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let tiling = args[3] == "tiles";
    let det = Detector::load(std::path::Path::new(&args[1]), DetectorConfig { tiling, ..Default::default() }).unwrap();
    let img = decode::open(std::path::Path::new(&args[2])).unwrap();
    for f in det.detect(&img).unwrap() {
        println!("{:.1} {:.1} {:.1} {:.1} score {:.3}", f.bbox.x0, f.bbox.y0, f.bbox.x1, f.bbox.y1, f.score);
    }
}
