extension Array {
    /// The indices of entries whose key already appeared earlier in the array.
    ///
    /// Short lists (the usual `dependsOn` or `publishes`) are searched linearly, which allocates nothing; long
    /// ones through a set, so a hostile list of 100,000 entries stays linear in time.
    func indicesOfRepeats(by key: (Element) -> String) -> [Int] {
        guard count > 16 else {
            return indices.filter { index in self[..<index].contains { key($0) == key(self[index]) } }
        }
        var seen = Set<String>(minimumCapacity: count)
        return indices.filter { !seen.insert(key(self[$0])).inserted }
    }
}
