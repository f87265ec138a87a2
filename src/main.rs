fn main() {
    println!("pagerbox: being written");
}
